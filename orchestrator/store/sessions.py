"""Session records in Redis: creation, the step lifecycle scripts, and snapshots."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from orchestrator.core.ids import slot_member
from orchestrator.core.logentry import LogEntry
from orchestrator.core.records import (
    TRACE_CONTEXT_FIELDS,
    NewSession,
    NewSubplan,
    SessionRecord,
    dumps,
    initial_record,
    session_fields,
    subplan_step_record,
)
from orchestrator.store.budgets import BudgetStore
from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.experiments import ExperimentStore
from orchestrator.store.idempotency import ClaimedKey, IdempotencyStore
from orchestrator.store.keys import Keys
from orchestrator.store.logbook import Logbook
from orchestrator.store.metrics_fold import MetricsFold
from orchestrator.store.replication import DurableWrites, ReplicaAcks
from orchestrator.store.run_records import RunRecords
from orchestrator.store.runner import ScriptRunner
from orchestrator.store.scripts import (
    Cancellation,
    Claim,
    Expansion,
    Handoff,
    Recovery,
    Retried,
    Routing,
    Transition,
    handoffs,
    hash_fields,
    text,
)
from orchestrator.store.session_index import SessionIndex
from orchestrator.store.session_inputs import SessionInputs
from orchestrator.store.webhooks import WebhookStore


@translates_redis_errors
class SessionStore:
    """Sessions and their steps. Each lifecycle change is one Lua call (one round trip), with
    any log entries sent in the same pipeline."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        logbook: Logbook | None = None,
        *,
        replica_acks: ReplicaAcks | None = None,
    ) -> None:
        self._client = client
        self._keys = keys
        self._durable = DurableWrites(client, replica_acks or ReplicaAcks())
        self._logbook = logbook or Logbook(client, keys)
        self._run = ScriptRunner(client, self._logbook)
        self.inputs = SessionInputs(client, keys, self._run)
        self.budgets = BudgetStore(client, keys, self._run)
        self.experiments = ExperimentStore(client, keys)
        self.runs = RunRecords(client, keys)
        self.idempotency = IdempotencyStore(client, keys, self._durable)
        self.webhooks = WebhookStore(client, keys)
        self.metrics_fold = MetricsFold(client, keys)

    @property
    def keys(self) -> Keys:
        return self._keys

    @property
    def index(self) -> SessionIndex:
        """Listing sessions by user and status."""
        return SessionIndex(self._client, self._keys)

    def housekeep(self, *, now_ms: int, retention_ms: int) -> int:
        """After retention: prune expired sessions' index entries and the cross-session log."""
        self._logbook.trim_global(now_ms - retention_ms)
        return self.index.prune_expired(now_ms=now_ms, retention_ms=retention_ms)

    def create(
        self,
        new: NewSession,
        logs: Sequence[LogEntry] = (),
        *,
        grace_ms: int = 60_000,
        claim: ClaimedKey | None = None,
    ) -> None:
        """Write a whole session atomically (MULTI/EXEC), keeping the Idempotency-Key ``claim``
        made for it; steps without dependencies are queued. With MEOWSTIK_REDIS_MIN_REPLICA_ACKS
        it returns once replicas have it, or raises ReplicaAckTimeoutError (it is written)."""
        k, sid = self._keys, new.session_id
        pipe = self._durable.transaction()
        pipe.hset(k.session(sid), mapping=hash_fields(session_fields(new)))
        pipe.hset(k.plan(sid), mapping={s.step_id: s.step_json for s in new.steps})
        pipe.hset(k.depends(sid), mapping={s.step_id: dumps(s.depends_on) for s in new.steps})
        pipe.hset(k.children(sid), mapping={s.step_id: dumps(s.children) for s in new.steps})
        pipe.hset(k.remaining(sid), mapping={s.step_id: len(s.depends_on) for s in new.steps})
        pipe.hset(k.steps(sid), mapping={s.step_id: initial_record(s, new) for s in new.steps})
        pipe.zadd(k.sessions_index, {sid: new.created_at_ms})
        pipe.zadd(k.sessions_by_status("executing"), {sid: new.created_at_ms})
        if new.user_id is not None:
            pipe.zadd(k.sessions_by_user(new.user_id), {sid: new.created_at_ms})
            pipe.sadd(k.session_users, new.user_id)
        roots = {
            slot_member(sid, s.step_id): new.created_at_ms + grace_ms
            for s in new.steps
            if not s.depends_on
        }
        pipe.zadd(k.deadlines, roots)  # until they are routed: a lost dispatch is recovered
        if new.experiment and new.variant:
            pipe.rpush(k.experiment_sessions(new.experiment), f"{new.variant}|{sid}")
        for entry in logs:
            self._logbook.append(pipe, entry, new.created_at_ms)
        if claim is not None:
            self.idempotency.keep(claim, pipeline=pipe)
        self._durable.commit(pipe)

    def claim(
        self,
        sid: str,
        step_id: str,
        *,
        token: str,
        now_ms: int,
        lease_ms: int,
        agent_id: str,
        logs: Sequence[LogEntry] = (),
    ) -> Claim:
        k = self._keys
        keys = [
            k.session(sid),
            k.steps(sid),
            k.plan(sid),
            k.depends(sid),
            k.results(sid),
            k.shared_state(sid),
            k.agent(agent_id),
            k.agent_slots(agent_id),
            k.answers(sid),
        ]
        args = [
            k.prefix, step_id, token, now_ms, lease_ms, agent_id, slot_member(sid, step_id), sid
        ]  # fmt: skip
        return Claim.parse(self._run("claim_step", keys, args, logs, now_ms))

    def complete(
        self,
        sid: str,
        step_id: str,
        *,
        token: str,
        now_ms: int,
        output_json: str,
        agent_id: str,
        reserve_ms: int,
        state_updates: dict[str, str] | None = None,
        logs: Sequence[LogEntry] = (),
        route_policy: str = "",
        rotation: int = 0,
        accounts_json: str = "",
    ) -> Transition:
        """Record the output (and the run's ``accounts_json``: its model usage, what the agent
        reported spending, counted here once) and release dependents. With ``route_policy`` (a
        selection policy name) the released dependents are routed in the same script
        (``Transition.routed`` and ``parked``); released steps in neither are left for the
        caller's router."""
        k = self._keys
        keys = [
            k.session(sid),
            k.steps(sid),
            k.children(sid),
            k.remaining(sid),
            k.results(sid),
            k.shared_state(sid),
        ]
        args: list[Any] = [k.prefix, step_id, token, now_ms, output_json, agent_id]
        args += [slot_member(sid, step_id), reserve_ms, route_policy, rotation, f"agent:{agent_id}"]
        args.append(accounts_json)
        for key, value_json in (state_updates or {}).items():
            args.extend((key, value_json))
        return Transition.parse_completion(self._run("complete_step", keys, args, logs, now_ms))

    def fail(
        self,
        sid: str,
        step_id: str,
        *,
        token: str,
        now_ms: int,
        message: str,
        error_json: str,
        reserve_ms: int,
        logs: Sequence[LogEntry] = (),
        unschedulable_only: bool = False,
    ) -> Transition:
        """Fail the step and apply the failure policy. With ``unschedulable_only`` (a schedule
        timeout) only while it waits for an agent and none is eligible: else the code is
        ``eligible`` (it now waits for capacity) or ``stale``, and nothing else changed."""
        k = self._keys
        keys = [k.session(sid), k.steps(sid), k.children(sid), k.errors(sid)]
        args = [k.prefix, step_id, token, now_ms, message, error_json, slot_member(sid, step_id)]
        args += [reserve_ms, "1" if unschedulable_only else ""]
        return Transition.parse_failure(self._run("fail_step", keys, args, logs, now_ms))

    def requeue(
        self,
        sid: str,
        step_id: str,
        *,
        token: str,
        now_ms: int,
        message: str,
        reroute: bool,
        agent_id: str,
        reserve_ms: int,
        backoff_ms: int = 0,
        logs: Sequence[LogEntry] = (),
    ) -> Transition:
        """Retry on the same agent after ``backoff_ms``, or (``reroute``) free it for a fallback."""
        k = self._keys
        keys = [k.session(sid), k.steps(sid), k.agent_slots(agent_id)]
        args = [k.prefix, step_id, token, now_ms, message, "reroute" if reroute else "retry"]
        args += [slot_member(sid, step_id), reserve_ms, backoff_ms]
        return Transition.parse_requeue(self._run("requeue_step", keys, args, logs, now_ms))

    def expand(
        self,
        sid: str,
        step_id: str,
        *,
        token: str,
        now_ms: int,
        reserve_ms: int,
        subplan: NewSubplan,
    ) -> Expansion:
        """Schedule a sub-plan under the running step ``step_id``, which waits for it."""
        k = self._keys
        keys = [
            k.session(sid),
            k.steps(sid),
            k.plan(sid),
            k.depends(sid),
            k.children(sid),
            k.remaining(sid),
            k.subplans(sid),
        ]
        args: list[Any] = [k.prefix, step_id, token, now_ms, slot_member(sid, step_id)]
        args += [reserve_ms, subplan.fingerprint, subplan.document_json, dumps(subplan.top_ids)]
        for new in subplan.steps:
            args += [new.step_id, new.step_json, dumps(new.depends_on), dumps(new.children)]
            args += [new.remaining, subplan_step_record(new)]
        return Expansion.parse(self._run("expand_step", keys, args))

    def step_records(self, sid: str, step_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Several steps' runtime records and dependency lists in one round trip:
        {step id: record plus "dependsOn"}; steps that do not exist are left out."""
        pipe = self._client.pipeline(transaction=False)
        pipe.hmget(self._keys.steps(sid), list(step_ids))
        pipe.hmget(self._keys.depends(sid), list(step_ids))
        records, depends = pipe.execute()
        out: dict[str, dict[str, Any]] = {}
        for step_id, raw, deps in zip(step_ids, records, depends, strict=True):
            if raw is not None:
                out[step_id] = {**json.loads(raw), "dependsOn": json.loads(deps or "[]")}
        return out

    def renew_lease(
        self, sid: str, step_id: str, *, token: str, lease_until_ms: int, agent_id: str
    ) -> bool:
        keys = [self._keys.steps(sid), self._keys.agent_slots(agent_id), self._keys.deadlines]
        args = [step_id, token, lease_until_ms, slot_member(sid, step_id)]
        return bool(int(self._run("renew_lease", keys, args)))

    def route(
        self,
        sid: str,
        step_ids: Sequence[str],
        *,
        now_ms: int,
        reserve_ms: int,
        capabilities: Sequence[str],
        agent_type: str | None,
        excluded: Sequence[str],
        candidates: Sequence[str],
        pinned: str | None = None,
    ) -> Routing:
        """Reserve a slot on the first candidate with room for each step, else park it (for
        ``pinned``'s capacity only, when the steps are pinned to that agent)."""
        k = self._keys
        args: list[Any] = [k.prefix, sid, now_ms, reserve_ms, capabilities[0]]
        args += [dumps(list(step_ids)), dumps(list(capabilities)), agent_type or ""]
        args += [dumps(list(excluded)), pinned or "", *candidates]
        reply = self._run("route_steps", [k.session(sid), k.steps(sid)], args)
        return Routing.parse(reply)

    def release_slot(
        self, agent_id: str, sid: str, step_id: str, *, now_ms: int, reserve_ms: int
    ) -> list[Handoff]:
        k = self._keys
        keys = [k.agent(agent_id), k.agent_slots(agent_id), k.deadlines]
        args = [k.prefix, agent_id, slot_member(sid, step_id), now_ms, reserve_ms]
        return handoffs(self._run("release_slot", keys, args))

    def reap_agent(self, agent_id: str, *, now_ms: int, reserve_ms: int) -> list[Handoff]:
        """Drop the agent's expired slots and hand free ones to waiting steps."""
        k = self._keys
        keys = [k.agent(agent_id), k.agent_slots(agent_id), k.deadlines]
        args = [k.prefix, agent_id, now_ms, reserve_ms]
        return handoffs(self._run("reap_agent", keys, args))

    def due_deadlines(self, now_ms: int, limit: int = 100) -> list[tuple[str, str]]:
        """(session id, step id) of steps whose deadline passed, oldest first."""
        members = self._client.zrangebyscore(self._keys.deadlines, "-inf", now_ms, 0, limit)
        return [tuple(text(m).split("|", 1)) for m in members]  # type: ignore[misc]

    def due_schedule_deadlines(self, now_ms: int, limit: int = 100) -> list[tuple[str, str]]:
        """(session id, step id) of steps waiting for an agent past their schedule deadline."""
        members = self._client.zrangebyscore(
            self._keys.schedule_deadlines, "-inf", now_ms, 0, limit
        )
        return [tuple(text(m).split("|", 1)) for m in members]  # type: ignore[misc]

    def schedule_timeout_ms(self, sid: str) -> int:
        """The session's schedule timeout (ms; 0 when it has none), set when it was created."""
        return int(self._client.hget(self._keys.session(sid), "scheduleTimeoutMs") or 0)

    def clear_schedule_deadline(self, sid: str, step_id: str) -> None:
        """Forget a schedule deadline whose step no longer waits (or no longer exists)."""
        self._client.zrem(self._keys.schedule_deadlines, slot_member(sid, step_id))

    def recover(
        self, sid: str, step_id: str, *, now_ms: int, reserve_ms: int, max_deliveries: int
    ) -> Recovery:
        keys = [self._keys.session(sid), self._keys.steps(sid)]
        args = [self._keys.prefix, sid, step_id, now_ms, reserve_ms, max_deliveries]
        return Recovery.parse(self._run("recover_step", keys, args))

    def cancel(
        self,
        sid: str,
        *,
        now_ms: int,
        reserve_ms: int,
        logs: Sequence[LogEntry] = (),
        budget_error_json: str = "",
    ) -> Cancellation:
        """End the session cancelled; with ``budget_error_json`` (a budget stop) failed, the
        steps parked on its budget failing with that error."""
        k = self._keys
        keys = [k.session(sid), k.steps(sid), k.input_requests(sid), k.errors(sid)]
        ending = "failed" if budget_error_json else "cancelled"
        args = [k.prefix, sid, now_ms, reserve_ms, ending, budget_error_json]
        return Cancellation.parse(self._run("cancel_session", keys, args, logs, now_ms))

    def retry(self, sid: str, *, now_ms: int) -> Retried:
        """Start the session's next round: its failed, skipped and cancelled steps again."""
        k = self._keys
        keys = [k.session(sid), k.steps(sid), k.depends(sid), k.remaining(sid)]
        keys.append(k.input_requests(sid))
        return Retried.parse(self._run("retry_session", keys, [k.prefix, sid, now_ms]))

    def context_fields(self, sid: str) -> dict[str, str]:
        """The shared state as stored: field -> JSON text (to size a merge before writing it)."""
        stored = self._client.hgetall(self._keys.shared_state(sid))
        return {text(key): text(value) for key, value in stored.items()}

    def queue_length(self, queue: str) -> int:
        """Messages waiting in a Celery queue (kombu's Redis transport keeps each as a list,
        under the broker prefix: ``Keys.broker``)."""
        return int(self._client.llen(self._keys.broker(queue)))

    def progress(self, sid: str) -> dict[str, Any] | None:
        """The session's status and counters in one HMGET (None if it does not exist): what a
        live view needs, without reading every step."""
        fields = ("status", "completedTasks", "failedTasks", "totalTasks")
        values = self._client.hmget(self._keys.session(sid), fields)
        if values[0] is None:
            return None
        status, *counts = (text(v) for v in values)
        return {
            "completedTasks": int(counts[0]),
            "failedTasks": int(counts[1]),
            "totalTasks": int(counts[2]),
            "status": status,
        }

    def mean_step_seconds(self) -> dict[str, float]:
        """Measured mean step duration per capability, from the /metrics histogram."""
        self.metrics_fold.before_read()
        raw = self._client.hgetall(self._keys.step_durations)
        fields = {text(key): text(value) for key, value in raw.items()}
        counts: dict[str, int] = {}
        for name, value in fields.items():
            capability, _, part = name.rpartition("|")
            if part.startswith("le="):
                counts[capability] = counts.get(capability, 0) + int(value)
        return {
            capability: int(fields.get(f"{capability}|sum_ms", 0)) / count / 1000
            for capability, count in counts.items()
            if count > 0
        }

    def step_ids(self, sid: str) -> list[str]:
        """The session's step ids, sorted ([] when there is no such session)."""
        return sorted(text(name) for name in self._client.hkeys(self._keys.steps(sid)))

    def step_record(self, sid: str, step_id: str) -> dict[str, Any]:
        """One step's runtime record ({} if there is none)."""
        raw = self._client.hget(self._keys.steps(sid), step_id)
        return json.loads(raw) if raw else {}

    def log(self, entry: LogEntry, now_ms: int) -> None:
        """Write one log entry on its own (lifecycle calls send theirs with the script)."""
        self._logbook.write(entry, now_ms)

    def read(self, sid: str) -> SessionRecord | None:
        """The whole session in one round trip, or None if it does not exist."""
        k = self._keys

        def reads(pipe: Any) -> None:
            pipe.hgetall(k.session(sid))
            pipe.hgetall(k.steps(sid))
            pipe.hgetall(k.results(sid))
            pipe.lrange(k.errors(sid), 0, -1)
            pipe.hgetall(k.depends(sid))
            pipe.hgetall(k.input_requests(sid))
            pipe.lrange(k.subplans(sid), 0, -1)
            pipe.hgetall(k.costs(sid))  # with every run counted before (the fold first)
            pipe.hgetall(k.routing(sid))

        replies = self.metrics_fold.read(self._client, reads)
        fields, steps, results, errors, depends, requests, subplans, costs, routing = replies
        if not fields:
            return None
        return SessionRecord(
            fields={text(key): text(value) for key, value in fields.items()},
            steps={text(key): json.loads(value) for key, value in steps.items()},
            results={text(key): json.loads(value) for key, value in results.items()},
            depends={text(key): json.loads(value) for key, value in depends.items()},
            input_requests={text(key): json.loads(value) for key, value in requests.items()},
            errors=[json.loads(item) for item in errors],
            subplans=[json.loads(item) for item in subplans],
            costs={text(key): int(value) for key, value in costs.items()},
            routing={text(key): json.loads(value) for key, value in routing.items()},
        )

    def routing_choice(self, sid: str) -> tuple[str | None, dict[str, str]]:
        """The selection policy the session names (None: the default's) and the agents it pins
        capabilities to ({} none), in one read."""
        policy, pins = self._client.hmget(self._keys.session(sid), ["policy", "agentOverrides"])
        return (
            None if policy is None else text(policy),
            json.loads(text(pins)) if pins else {},
        )

    def note_routing(
        self, sid: str, explanations: Mapping[Any, Any], logs: Sequence[LogEntry], now_ms: int
    ) -> None:
        """Keep why steps went where they did (step id -> JSON) with their log entries, in one
        round trip and one MULTI: both or neither when Redis refuses writes."""
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(self._keys.routing(sid), mapping=explanations)
        for entry in logs:
            self._logbook.append(pipe, entry, now_ms)
        pipe.execute()

    def budget_field(self, sid: str) -> str | None:
        """The session's "budget" field as stored (orchestrator/core/budgets.py), or None."""
        raw = self._client.hget(self._keys.session(sid), "budget")
        return None if raw is None else text(raw)

    def owner(self, sid: str) -> str | None:
        """The session's userId, or None when the session does not exist or has none."""
        owner = self._client.hget(self._keys.session(sid), "userId")
        return None if owner is None else text(owner)

    def trace_context(self, sid: str) -> dict[str, str]:
        """The W3C trace context the session was submitted in (its step runs' parent span), by
        header name; {} when it was submitted untraced or does not exist."""
        values = self._client.hmget(self._keys.session(sid), list(TRACE_CONTEXT_FIELDS))
        return {name: text(v) for name, v in zip(TRACE_CONTEXT_FIELDS, values, strict=True) if v}
