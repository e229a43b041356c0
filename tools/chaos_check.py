"""The outside checker of `make chaos`: reads the REST API and raw Redis (key names from
orchestrator/store/keys.py, nothing else of the product) and says what does not add up.

    python -m tools.chaos_check --api http://127.0.0.1:5000 --redis redis://127.0.0.1:6379/0 \\
        [--sessions accepted.json] [--report check.json] [--wait-s 300] [--settle-s 20]

It waits (up to ``--wait-s``) for every session to be terminal: the ones in ``--sessions`` (a
JSON list of the ids whose submit got a 202) and every one GET /sessions lists. Then it waits
(up to ``--settle-s``) for the leftovers of dead runs to go (slots and deadlines expire with
leases, locks with their TTL), and checks (tools/chaos_rules.py):

- every accepted session exists and is completed: nothing the chaos driver does may fail or
  cancel one (``--accept-failure TYPE`` accepts steps failed with that error type, e.g.
  DeadLettered, where a run has reasons for them);
- exactly one result per completed step and none for the others, in the snapshot and in the
  Redis results hash; the counters agree; a chaos step's result is its own and saw the outputs
  of exactly the steps it depends on; the log (the SSE feed) says "Step started" once per claim
  (a refused delivery's "Step started" and "Delivery not run" cancel out), "Step completed" once
  per result and "Step recovered ..." once per recovery;
- nothing left over: agent slots, deadlines (lease, schedule, input), waiting lists, session
  locks, messages on agent, capability or executor queues, status index entries that disagree
  with the session, ended sessions whose keys never expire; no agent load in GET /agents and
  /stats;
- /metrics (sessions by status, steps by capability and outcome, the duration histogram's
  counts: completed steps and failed ones that had started, agent runs) and the dashboard's
  agent figures (GET /agents/<id>/metrics?window=all, what its agent pages show) equal the
  records, and the dashboard's sessions and agents pages render.

Prints a markdown summary, writes the report as JSON, and exits 1 when there is any finding.
The totals assume Redis holds only the sessions listed: on a Redis where retention removed
some, the all-time counters are larger than the records.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.store.keys import Keys
from tools.chaos_rules import TERMINAL, Observed, all_findings, figures

API = "/api/orchestrator"
POLL_S = 0.5
QUEUE_PREFIXES = ("agent.", "cap.", "executor.")
DASHBOARD_PAGES = ("/", "/agents")


class Http(Protocol):
    def get(self, path: str, params: dict[str, Any] | None = None) -> tuple[int, str]:
        """GET ``path`` (with query ``params``): (status, body text)."""


class RequestsHttp:
    """The API at ``base_url`` over HTTP; connection errors and 5xx are retried for a while
    (Redis may be coming back), then surface as status 0 or the last 5xx."""

    def __init__(self, base_url: str, retry_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry_s = retry_s
        self.session = requests.Session()

    def get(self, path: str, params: dict[str, Any] | None = None) -> tuple[int, str]:
        deadline = time.monotonic() + self.retry_s
        while True:
            try:
                response = self.session.get(self.base_url + path, params=params, timeout=10)
                if response.status_code < 500 or time.monotonic() > deadline:
                    return response.status_code, response.text
            except requests.RequestException:
                if time.monotonic() > deadline:
                    return 0, ""
            time.sleep(POLL_S)


class CheckError(Exception):
    """The API did not answer what the checker must read."""


def get_json(http: Http, path: str, params: dict[str, Any] | None = None) -> Any:
    status, body = http.get(path, params)
    if status != 200:
        raise CheckError(f"GET {path} answered {status}: {body[:300]}")
    return json.loads(body)


class Checker:
    def __init__(self, http: Http, client: redis.Redis, keys: Keys | None = None) -> None:
        self.http = http
        self.client = client
        self.keys = keys or Keys()

    # --- sessions -------------------------------------------------------------------------------

    def listed_sessions(self) -> set[str]:
        found, cursor = set(), None
        while True:
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = get_json(self.http, f"{API}/sessions", params)
            found |= {s["sessionId"] for s in page["sessions"]}
            cursor = page.get("nextCursor")
            if not cursor:
                return found

    def snapshot(self, sid: str) -> dict[str, Any] | None:
        status, body = self.http.get(f"{API}/sessions/{sid}")
        if status == 404:
            return None
        if status != 200:
            raise CheckError(f"GET {API}/sessions/{sid} answered {status}: {body[:300]}")
        return json.loads(body)

    def wait_terminal(self, ids: set[str], wait_s: float) -> dict[str, dict[str, Any] | None]:
        """Every snapshot, once all are terminal or missing, or when ``wait_s`` has passed."""
        deadline = time.monotonic() + wait_s
        snapshots: dict[str, dict[str, Any] | None] = {}
        pending = set(ids)
        while True:
            for sid in sorted(pending):
                snapshots[sid] = self.snapshot(sid)
            pending = {
                sid
                for sid, snap in snapshots.items()
                if snap is not None and snap["status"] not in TERMINAL
            }
            if not pending or time.monotonic() >= deadline:
                return snapshots
            time.sleep(POLL_S)

    def logs(self, sid: str) -> list[dict[str, Any]]:
        entries, cursor = [], None
        while True:
            params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = get_json(self.http, f"{API}/sessions/{sid}/logs", params)
            entries += page["logs"]
            cursor = page.get("nextCursor")
            if not cursor:
                return entries

    # --- raw Redis ------------------------------------------------------------------------------

    def scan(self, pattern: str) -> list[str]:
        return sorted(k.decode() for k in self.client.scan_iter(match=pattern, count=1000))

    def leftover_lines(self, statuses: dict[str, str]) -> list[str]:
        """What a finished cluster should not hold any more (raw Redis reads)."""
        k, lines = self.keys, []

        def whose(member: str) -> str:
            sid = member.split("|", 1)[0]
            return f"session {statuses.get(sid, 'unknown to the API')}"

        now_ms = int(self.client.time()[0]) * 1000
        for agent in sorted(m.decode() for m in self.client.smembers(k.agents_index)):
            for member, score in self.client.zrange(k.agent_slots(agent), 0, -1, withscores=True):
                left = (score - now_ms) / 1000
                lines.append(
                    f"{k.agent_slots(agent)}: slot {member.decode()} left ({whose(member.decode())}"
                    f", lease {'ends in' if left > 0 else 'ended'} {abs(left):.1f} s"
                    f"{'' if left > 0 else ' ago'})"
                )
        for key in (k.deadlines, k.schedule_deadlines, k.input_deadlines):
            for member in self.client.zrange(key, 0, -1):
                lines.append(f"{key}: {member.decode()} left ({whose(member.decode())})")
        for key in self.scan(k.waiting("*")):
            for member in self.client.lrange(key, 0, -1):
                lines.append(f"{key}: waiting entry {member.decode()[:200]} left")
        for key in self.scan(k.lock("*", "*")):
            lines.append(f"{key}: lock left (TTL {self.client.ttl(key)} s)")
        for key in self.scan(k.broker("*")):
            queue = key.removeprefix(k.broker(""))
            if queue.startswith(QUEUE_PREFIXES) and self.client.type(key) == b"list":
                if depth := self.client.llen(key):
                    lines.append(f"{key}: {depth} message(s) still queued")
        return lines

    def settle(self, statuses: dict[str, str], settle_s: float) -> tuple[list[str], float]:
        """Leftovers, polled until there are none or ``settle_s`` has passed; and the wait."""
        started = time.monotonic()
        while True:
            lines = self.leftover_lines(statuses)
            if not lines or time.monotonic() - started >= settle_s:
                return lines, round(time.monotonic() - started, 1)
            time.sleep(POLL_S)

    def notes(self) -> list[str]:
        """What is worth knowing but expected: messages a killed worker left unacknowledged
        stay in kombu's unacked hash until MEOWSTIK_VISIBILITY_TIMEOUT_S restores them (the
        reconciler re-ran their steps long before; the claim then drops them)."""
        unacked = self.client.hlen(self.keys.broker("unacked"))
        return (
            [f"{self.keys.broker('unacked')}: {unacked} unacknowledged message(s)"]
            if unacked
            else []
        )

    def raw_session(self, observed: Observed, sid: str) -> None:
        k = self.keys
        steps = self.client.hgetall(k.steps(sid))
        observed.raw_steps[sid] = {f.decode(): json.loads(v) for f, v in steps.items()}
        observed.raw_results[sid] = {f.decode() for f in self.client.hkeys(k.results(sid))}
        observed.session_ttl_s[sid] = int(self.client.ttl(k.session(sid)))

    # --- the API's totals -------------------------------------------------------------------------

    def read_totals(self, observed: Observed) -> None:
        status, text = self.http.get("/metrics")
        if status != 200:
            raise CheckError(f"GET /metrics answered {status}: {text[:300]}")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                observed.metrics[key] = sample.value
        observed.agents = get_json(self.http, f"{API}/agents")["agents"]
        observed.stats = get_json(self.http, f"{API}/stats")
        for agent in observed.agents:
            path = f"{API}/agents/{agent['id']}/metrics"
            observed.agent_metrics[agent["id"]] = get_json(self.http, path, {"window": "all"})
        for status_name in ("executing", "waiting_for_input", *sorted(TERMINAL)):
            members = self.client.zrange(self.keys.sessions_by_status(status_name), 0, -1)
            observed.status_index[status_name] = {m.decode() for m in members}

    def dashboard_pages(self) -> list[str]:
        """The dashboard's sessions and agents pages render (they read the same records)."""
        found = []
        for path in DASHBOARD_PAGES:
            status, body = self.http.get(path)
            if status != 200:
                found.append(f"GET {path} (a dashboard page) answered {status}: {body[:200]}")
        return found

    # --- all of it --------------------------------------------------------------------------------

    def run(
        self,
        expected: set[str],
        *,
        wait_s: float = 300.0,
        settle_s: float = 20.0,
        accepted_failures: frozenset[str] = frozenset(),
        say: Callable[[str], None] = lambda line: None,
    ) -> dict[str, Any]:
        started = time.monotonic()
        ids = expected | self.listed_sessions()
        say(f"checking {len(ids)} sessions ({len(expected)} accepted by the driver)")
        observed = Observed(expected, self.wait_terminal(ids, wait_s))
        observed.accepted_failures = accepted_failures
        waited_s = round(time.monotonic() - started, 1)
        statuses = {sid: s["status"] for sid, s in observed.snapshots.items() if s is not None}
        observed.leftovers, settled_s = self.settle(statuses, settle_s)
        for sid, snapshot in sorted(observed.snapshots.items()):
            if snapshot is not None:
                observed.logs[sid] = self.logs(sid)
                self.raw_session(observed, sid)
        self.read_totals(observed)
        findings = all_findings(observed) + self.dashboard_pages()
        return {
            "waitedForTerminalS": waited_s,
            "settledS": settled_s,
            "acceptedSessions": len(expected),
            "sessionsNotAccepted": sorted(set(observed.snapshots) - expected),
            "figures": figures(observed),
            "notes": self.notes(),
            "findings": findings,
        }


def markdown(report: dict[str, Any]) -> str:
    """The checker's part of the summary."""
    f = report["figures"]
    lines = [
        "## Check",
        f"- sessions: {f['sessions']} ({', '.join(f'{n} {s}' for s, n in f['sessionsByStatus'].items())}),"  # noqa: E501
        f" {report['acceptedSessions']} accepted with a 202",
        f"- steps: {f['steps']}; attempts {f['attempts']}; re-executions {f['reExecutions']}"
        f" ({f['stepsRunMoreThanOnce']} steps ran more than once); recoveries {f['recoveries']}",
        "- log entries: " + ", ".join(f"{m!r} {n}" for m, n in f["logEntries"].items()),
        f"- waited {report['waitedForTerminalS']} s for terminal, {report['settledS']} s to settle",
        *(f"- note: {line}" for line in report.get("notes", [])),
        f"- findings: {len(report['findings'])}",
        *(f"  - {line}" for line in report["findings"]),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", required=True, help="the API's base URL")
    parser.add_argument("--redis", required=True, help="the Redis URL the cluster uses")
    parser.add_argument("--sessions", type=Path, help="JSON list of the accepted session ids")
    parser.add_argument("--report", type=Path, help="write the report here (JSON)")
    parser.add_argument("--prefix", default="meowstik", help="MEOWSTIK_KEY_PREFIX")
    parser.add_argument("--wait-s", type=float, default=300.0)
    parser.add_argument("--settle-s", type=float, default=20.0)
    parser.add_argument(
        "--accept-failure",
        action="append",
        default=[],
        metavar="ERROR_TYPE",
        help="a failed step with this error type is no finding (e.g. DeadLettered); repeatable",
    )
    args = parser.parse_args(argv)
    expected = set(json.loads(args.sessions.read_text())) if args.sessions else set()
    checker = Checker(RequestsHttp(args.api), redis.Redis.from_url(args.redis), Keys(args.prefix))
    report = checker.run(
        expected,
        wait_s=args.wait_s,
        settle_s=args.settle_s,
        accepted_failures=frozenset(args.accept_failure),
        say=print,
    )
    print(markdown(report))
    if args.report:
        args.report.write_text(json.dumps(report, indent=2))
    return 1 if report["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
