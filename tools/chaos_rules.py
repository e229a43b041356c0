"""What the chaos checker demands of what it observed (pure: no I/O). Each rule returns findings,
one precise line each: which session, step, key or figure, what it was and what it should be.

The observation (``Observed``) is gathered by tools/chaos_check.py from the REST API and raw
Redis reads only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

TERMINAL = frozenset({"completed", "failed", "cancelled"})
SESSION_STATUSES = ("executing", "waiting_for_input", "completed", "failed", "cancelled")
MetricKey = tuple[str, tuple[tuple[str, str], ...]]  # (sample name, sorted labels)


@dataclass
class Observed:
    """Everything the checker read, by session id where it is per session."""

    expected: set[str]  # sessions whose submit got a 202 (or its idempotent replay)
    snapshots: dict[str, dict[str, Any] | None]  # GET /sessions/<id>; None: 404
    logs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    raw_steps: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    raw_results: dict[str, set[str]] = field(default_factory=dict)  # HKEYS …:results
    session_ttl_s: dict[str, int] = field(default_factory=dict)  # TTL of the session hash
    status_index: dict[str, set[str]] = field(default_factory=dict)  # status -> session ids
    leftovers: list[str] = field(default_factory=list)  # from ``leftover_lines`` after settling
    metrics: dict[MetricKey, float] = field(default_factory=dict)  # GET /metrics
    agents: list[dict[str, Any]] = field(default_factory=list)  # GET /agents
    stats: dict[str, Any] = field(default_factory=dict)  # GET /stats
    agent_metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # …/metrics?window=all
    # error types a failed step may have without a finding (none by default: nothing the chaos
    # driver does may fail a session; a standalone run may accept e.g. DeadLettered)
    accepted_failures: frozenset[str] = frozenset()


def metric(observed: Observed, name: str, **labels: str) -> float:
    """A sample of /metrics by name and exact labels (0 when absent: counters start at 0)."""
    return observed.metrics.get((name, tuple(sorted(labels.items()))), 0.0)


# --- sessions and their steps -------------------------------------------------------------------


def session_findings(observed: Observed) -> list[str]:
    findings: list[str] = []
    for sid in sorted(observed.expected | set(observed.snapshots)):
        snapshot = observed.snapshots.get(sid)
        if snapshot is None:
            findings.append(f"session {sid}: accepted (202) but GET /sessions/{sid} answers 404")
            continue
        findings += _terminal(sid, snapshot, observed)
        findings += _results(sid, snapshot, observed)
        findings += _outputs(sid, snapshot)
        raw_steps = observed.raw_steps.get(sid, {})
        findings += _log_counts(sid, snapshot, observed.logs.get(sid, []), raw_steps)
        findings += _retention_and_index(sid, snapshot, observed)
    return findings


def _terminal(sid: str, snapshot: dict[str, Any], observed: Observed) -> list[str]:
    status = snapshot["status"]
    steps = snapshot.get("steps", {})
    if status not in TERMINAL:
        open_steps = ", ".join(
            f"{step_id} {s['status']}"
            + (f" on {s['agentId']}" if s.get("agentId") else "")
            + f" (attempts {s.get('attempts', 0)})"
            for step_id, s in steps.items()
            if s["status"] not in ("completed", "skipped", "cancelled", "failed")
        )
        return [f"session {sid}: still {status} when the check ended; open steps: {open_steps}"]
    if status == "completed" or sid not in observed.expected:
        return []
    if status == "cancelled":
        return [f"session {sid}: cancelled, but nobody cancelled it (the chaos driver never does)"]
    failed = [(step_id, s) for step_id, s in steps.items() if s["status"] == "failed"]
    raw = observed.raw_steps.get(sid, {})
    unaccepted = [
        f"{step_id} {_error_text(sid, step_id, s, snapshot)} (attempts {s.get('attempts', 0)}, "
        f"recoveries {raw.get(step_id, {}).get('recoveries', 0)})"
        for step_id, s in failed
        if _error_of(sid, step_id, snapshot).get("errorType") not in observed.accepted_failures
    ]
    if unaccepted or not failed:
        return [f"session {sid}: failed: {'; '.join(unaccepted) or 'no step failed'}"]
    return []


def _error_of(sid: str, step_id: str, snapshot: dict[str, Any]) -> dict[str, Any]:
    matching = [e for e in snapshot.get("errors", []) if e.get("stepId") == step_id]
    return matching[-1] if matching else {}


def _error_text(sid: str, step_id: str, step: dict[str, Any], snapshot: dict[str, Any]) -> str:
    error = _error_of(sid, step_id, snapshot)
    if error:
        return f"{error.get('errorType')}: {error.get('message')}"
    return repr(step.get("error"))


def _results(sid: str, snapshot: dict[str, Any], observed: Observed) -> list[str]:
    """One result per completed step, none for any other, in the snapshot and in Redis."""
    findings = []
    steps = snapshot.get("steps", {})
    completed = {step_id for step_id, s in steps.items() if s["status"] == "completed"}
    by_job = {f"{sid}.{step_id}": step_id for step_id in steps}
    job_ids = snapshot.get("jobIds", [])
    if set(job_ids) != set(by_job) or len(job_ids) != len(set(job_ids)):
        findings.append(f"session {sid}: jobIds {job_ids} do not name its steps {sorted(steps)}")
    results = {by_job.get(job, job) for job in snapshot.get("results", {})}
    for step_id in sorted(completed - results):
        findings.append(f"session {sid} step {step_id}: completed but has no result")
    for step_id in sorted(results - completed):
        status = steps.get(step_id, {}).get("status", "unknown")
        findings.append(f"session {sid} step {step_id}: a result is recorded but it is {status}")
    raw = observed.raw_results.get(sid)
    if raw is not None and raw != results:
        findings.append(
            f"session {sid}: Redis results hash holds {sorted(raw)}, the snapshot {sorted(results)}"
        )
    counted = {
        "completedTasks": len(completed),
        "failedTasks": sum(1 for s in steps.values() if s["status"] == "failed"),
        "totalTasks": len(steps),
    }
    for name, expected in counted.items():
        if snapshot.get(name) != expected:
            findings.append(
                f"session {sid}: {name} is {snapshot.get(name)}, its steps say {expected}"
            )
    return findings


def _outputs(sid: str, snapshot: dict[str, Any]) -> list[str]:
    """A chaos step's output names its own session and step and saw every dependency's output."""
    findings = []
    for job, output in snapshot.get("results", {}).items():
        if not (isinstance(output, dict) and output.get("chaos")):
            continue
        step_id = job.removeprefix(f"{sid}.")
        if (output.get("sessionId"), output.get("stepId")) != (sid, step_id):
            findings.append(
                f"session {sid} step {step_id}: its result belongs to session "
                f"{output.get('sessionId')} step {output.get('stepId')}"
            )
        depends_on = sorted(snapshot.get("steps", {}).get(step_id, {}).get("dependsOn", []))
        if output.get("dependencies") != depends_on:
            findings.append(
                f"session {sid} step {step_id}: ran with the outputs of "
                f"{output.get('dependencies')}, but depends on {depends_on}"
            )
    return findings


STARTED, NOT_RUN, COMPLETED = "Step started", "Delivery not run", "Step completed"
RECOVERED = "Step recovered after its deadline passed"


def _log_counts(
    sid: str, snapshot: dict[str, Any], logs: list[dict[str, Any]], raw: dict[str, Any]
) -> list[str]:
    """The durable log (and so the SSE feed) tells each step's story as its record does: a
    "Step started" per claim (a delivery whose claim was refused logs only "Delivery not run":
    the claim script writes its entry when it answers ok), one "Step completed" per result, one
    "Step recovered ..." per recovery (the raw record's ``recoveries``)."""
    counted = Counter((e.get("message"), e.get("taskId")) for e in logs)
    findings = []
    for step_id, step in snapshot.get("steps", {}).items():
        attempts = int(step.get("attempts", 0))
        stories = (
            (STARTED, counted[(STARTED, step_id)], attempts, f"'{STARTED}' entries", "claim(s)"),
            (COMPLETED, counted[(COMPLETED, step_id)], int(step["status"] == "completed"),
             f"'{COMPLETED}' entries", "result(s)"),
            (RECOVERED, counted[(RECOVERED, step_id)],
             int(raw.get(step_id, {}).get("recoveries", 0)), f"'{RECOVERED}' entries",
             "recovery(ies)"),
        )  # fmt: skip
        for message, logged, recorded, told, what in stories:
            if logged == recorded:
                continue
            agents = [
                e.get("agentId")
                for e in logs
                if e.get("message") == message and e.get("taskId") == step_id
            ]
            findings.append(
                f"session {sid} step {step_id}: {told}: {logged} (by {agents}), but its record "
                f"has {recorded} {what} ({step['status']}, attempts {attempts})"
            )
    return findings


def _retention_and_index(sid: str, snapshot: dict[str, Any], observed: Observed) -> list[str]:
    findings = []
    status = snapshot["status"]
    ttl = observed.session_ttl_s.get(sid)
    if status in TERMINAL and ttl is not None and ttl < 0:
        findings.append(f"session {sid}: {status} but its keys never expire (TTL {ttl})")
    if observed.status_index:
        listed = sorted(s for s, ids in observed.status_index.items() if sid in ids)
        if listed != [status]:
            findings.append(f"session {sid}: {status}, but in the status indexes {listed}")
    return findings


# --- totals: /metrics and the dashboard's figures against the records -----------------------------


@dataclass(frozen=True)
class Totals:
    """What the session records add up to."""

    sessions_by_status: Counter[str]
    steps_by_capability: Counter[tuple[str, str]]  # (first capability, status)
    succeeded_by_agent: Counter[str]
    attempts: int
    # steps the duration histogram counts: completed, and failed after they had started
    timed_by_capability: Counter[str]


def totals(observed: Observed) -> Totals:
    by_status: Counter[str] = Counter()
    by_capability: Counter[tuple[str, str]] = Counter()
    by_agent: Counter[str] = Counter()
    timed: Counter[str] = Counter()
    attempts = 0
    for snapshot in observed.snapshots.values():
        if snapshot is None:
            continue
        by_status[snapshot["status"]] += 1
        capabilities = {
            s["id"]: (s.get("requiredCapabilities") or ["?"])[0] for s in snapshot["plan"]["steps"]
        }
        for step_id, step in snapshot.get("steps", {}).items():
            capability = capabilities.get(step_id, "?")
            by_capability[(capability, step["status"])] += 1
            attempts += int(step.get("attempts", 0))
            if step["status"] == "completed":
                by_agent[step.get("agentId") or "?"] += 1
            if step["status"] == "completed" or (
                step["status"] == "failed" and step.get("startedAt")
            ):
                timed[capability] += 1
    return Totals(by_status, by_capability, by_agent, attempts, timed)


def totals_findings(observed: Observed) -> list[str]:
    found = totals(observed)
    findings = []

    def compare(where: str, shown: float, expected: float, what: str) -> None:
        if shown != expected:
            findings.append(f"{where} = {shown:g}, but the records say {expected:g} {what}")

    for status in SESSION_STATUSES:
        shown = metric(observed, "meowstik_sessions", status=status)
        compare(f'/metrics meowstik_sessions{{status="{status}"}}', shown,
                found.sessions_by_status[status], f"{status} sessions")  # fmt: skip
    capabilities = {c for c, _ in found.steps_by_capability} | {
        dict(labels).get("capability", "")
        for name, labels in observed.metrics
        if name == "meowstik_steps_total"
    }
    for capability in sorted(capabilities - {""}):
        for outcome in ("completed", "failed", "cancelled", "skipped"):
            shown = metric(observed, "meowstik_steps_total", capability=capability, outcome=outcome)
            where = (
                f'/metrics meowstik_steps_total{{capability="{capability}",outcome="{outcome}"}}'
            )
            compare(where, shown, found.steps_by_capability[(capability, outcome)],
                    f"{outcome} {capability} steps")  # fmt: skip
        shown = metric(observed, "meowstik_step_duration_seconds_count", capability=capability)
        compare(f'/metrics meowstik_step_duration_seconds_count{{capability="{capability}"}}',
                shown, found.timed_by_capability[capability],
                f"{capability} steps completed, or failed after they started")  # fmt: skip
    findings += _agent_totals(observed, found)
    return findings


def _agent_totals(observed: Observed, found: Totals) -> list[str]:
    findings = []
    agent_ids = sorted({a["id"] for a in observed.agents} | set(found.succeeded_by_agent) - {"?"})
    started_total = 0.0
    for agent_id in agent_ids:
        runs = {
            outcome: metric(observed, "meowstik_agent_runs_total", agent=agent_id, outcome=outcome)
            for outcome in ("started", "succeeded", "failed")
        }
        started_total += runs["started"]
        if runs["succeeded"] != found.succeeded_by_agent[agent_id]:
            findings.append(
                f'/metrics meowstik_agent_runs_total{{agent="{agent_id}",outcome="succeeded"}} '
                f"= {runs['succeeded']:g}, but the records say "
                f"{found.succeeded_by_agent[agent_id]} steps completed by {agent_id}"
            )
        shown = observed.agent_metrics.get(agent_id)
        if shown is None:
            continue
        for outcome, value in runs.items():
            if shown.get(outcome) != value:
                findings.append(
                    f"GET /api/orchestrator/agents/{agent_id}/metrics?window=all (the "
                    f"dashboard's agent page) {outcome} = {shown.get(outcome)}, /metrics "
                    f"says {value:g}"
                )
    if started_total != found.attempts:
        findings.append(
            f'/metrics meowstik_agent_runs_total{{outcome="started"}} sums to '
            f"{started_total:g}, but the steps' attempts sum to {found.attempts}"
        )
    return findings


def load_findings(observed: Observed) -> list[str]:
    """Once everything is terminal no agent carries load, as GET /agents and /stats show it."""
    findings = [
        f"GET /api/orchestrator/agents: {a['id']} currentLoad {a.get('currentLoad')} with every "
        "session ended"
        for a in observed.agents
        if a.get("currentLoad")
    ]
    for name in ("usedCapacity", "busyAgents"):
        if observed.stats.get(name):
            findings.append(
                f"GET /api/orchestrator/stats: {name} {observed.stats[name]} with every "
                "session ended"
            )
    return findings


def all_findings(observed: Observed) -> list[str]:
    return [
        *session_findings(observed),
        *observed.leftovers,
        *load_findings(observed),
        *totals_findings(observed),
    ]


def figures(observed: Observed) -> dict[str, Any]:
    """The run's figures as the records tell them (for the report)."""
    found = totals(observed)
    steps = sum(found.steps_by_capability.values())
    rerun = [
        (sid, step_id, int(step.get("attempts", 0)))
        for sid, snapshot in observed.snapshots.items()
        if snapshot is not None
        for step_id, step in snapshot.get("steps", {}).items()
        if int(step.get("attempts", 0)) > 1
    ]
    logs = [e for entries in observed.logs.values() for e in entries]
    messages = Counter(e.get("message", "") for e in logs)
    return {
        "sessions": len([s for s in observed.snapshots.values() if s is not None]),
        "sessionsByStatus": dict(found.sessions_by_status),
        "steps": steps,
        "stepsByCapabilityAndStatus": {
            f"{c}/{s}": n for (c, s), n in sorted(found.steps_by_capability.items())
        },
        "attempts": found.attempts,
        "stepsRunMoreThanOnce": len(rerun),
        "reExecutions": sum(attempts - 1 for _, _, attempts in rerun),
        "recoveries": sum(
            int(r.get("recoveries", 0))
            for steps_ in observed.raw_steps.values()
            for r in steps_.values()
        ),  # fmt: skip
        "logEntries": {
            message: messages[message]
            for message in (STARTED, NOT_RUN, COMPLETED, RECOVERED, "Step retrying", "Step failed")
        },
    }
