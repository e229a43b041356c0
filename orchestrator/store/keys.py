"""Every Redis key and queue name, as functions of ids, under one configurable prefix.

A session's keys share the hash tag ``{<session id>}`` so that a Lua script touching them stays in
one slot, should the deployment ever move to a slot-aware proxy.

Each public method of ``Keys`` that returns ``str``, and each property, names one family of keys
(``FAMILIES``). Nothing else spells a key: the Lua scripts get theirs in KEYS, or from functions
that orchestrator/store/prelude.py renders from these methods (``KeyFamily.template``).
``session_owned`` lists what retention expires; ``family_of`` tells which family a key is.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Keys:
    """Key names under ``prefix``. Add a key by adding a method (or property) here: it becomes a
    family, and one taking only ``session_id`` becomes part of what a session owns."""

    prefix: str = "meowstik"

    # --- sessions -------------------------------------------------------------------------------
    def session(self, session_id: str) -> str:
        """Hash: status, goal, counters, plan JSON, initial context, times (ms)."""
        return f"{self.prefix}:session:{{{session_id}}}"

    def steps(self, session_id: str) -> str:
        """Hash: step id -> JSON runtime record (status, attempts, agentId, token, lease, times)."""
        return f"{self.session(session_id)}:steps"

    def plan(self, session_id: str) -> str:
        """Hash: step id -> PlanStep JSON (subtasks flattened away). Written once."""
        return f"{self.session(session_id)}:plan"

    def depends(self, session_id: str) -> str:
        """Hash: step id -> JSON list of the step ids it depends on. Written once."""
        return f"{self.session(session_id)}:depends"

    def children(self, session_id: str) -> str:
        """Hash: step id -> JSON list of the step ids that depend on it. Written once."""
        return f"{self.session(session_id)}:children"

    def remaining(self, session_id: str) -> str:
        """Hash: step id -> number of its dependencies not yet completed."""
        return f"{self.session(session_id)}:remaining"

    def results(self, session_id: str) -> str:
        """Hash: step id -> output JSON."""
        return f"{self.session(session_id)}:results"

    def shared_state(self, session_id: str) -> str:
        """Hash: key -> JSON value, visible to every step of the session."""
        return f"{self.session(session_id)}:state"

    def errors(self, session_id: str) -> str:
        """List of StepError JSON documents, in the order they happened."""
        return f"{self.session(session_id)}:errors"

    def subplans(self, session_id: str) -> str:
        """List of JSON documents, one per sub-plan a running step returned: parentId, round,
        fingerprint and its steps (ids as scheduled), in the order they were added."""
        return f"{self.session(session_id)}:subplans"

    def input_requests(self, session_id: str) -> str:
        """Hash: step id -> JSON of its open operator-input request."""
        return f"{self.session(session_id)}:input-requests"

    def answers(self, session_id: str) -> str:
        """Hash: step id -> JSON of the operator's answer, given to the step when it re-runs."""
        return f"{self.session(session_id)}:answers"

    def session_logs(self, session_id: str) -> str:
        """Capped stream of the session's log entries."""
        return f"{self.session(session_id)}:logs"

    def deltas(self, session_id: str) -> str:
        """Capped stream of running steps' model text as it arrives, in coalesced chunks
        (orchestrator/store/deltas.py): the SSE ``step.delta`` events."""
        return f"{self.session(session_id)}:deltas"

    def private_state(self, session_id: str, agent_id: str) -> str:
        """Hash: key -> JSON value, visible to one agent within the session."""
        return f"{self.session(session_id)}:private:{agent_id}"

    def private_state_index(self, session_id: str) -> str:
        """Set of agent ids that have private state in the session."""
        return f"{self.session(session_id)}:private-agents"

    def temporary_state(self, session_id: str, key: str) -> str:
        """String with a TTL: one temporary state entry (JSON)."""
        return f"{self.session(session_id)}:temp:{key}"

    def temporary_state_index(self, session_id: str) -> str:
        """Sorted set: temporary keys scored by expiry (ms), to list them without scanning."""
        return f"{self.session(session_id)}:temp-index"

    def state_meta(self, session_id: str) -> str:
        """Hash: "<scope>|[<agent id>|]<key>" (scope s, t or p) -> "<version>|<updated at
        ms>|<updated by>" of every state entry ever written; versions only grow (a delete
        bumps the version too), so a transaction that saw a version sees any change since."""
        return f"{self.session(session_id)}:state-meta"

    def workspace(self, session_id: str) -> str:
        """Hash: relative path -> UTF-8 text of a workspace file (the workspace tools'
        per-session file area; orchestrator/store/workspace.py)."""
        return f"{self.session(session_id)}:workspace"

    def turns(self, session_id: str) -> str:
        """Hash: "<step id>|<agent id>|<entry>" -> JSON of one recorded model reply or tool
        result (or a tool call's started/asked marker) of a step's durable tool loop
        (orchestrator/store/turns.py); a replayed step reads these instead of calling again."""
        return f"{self.session(session_id)}:turns"

    def costs(self, session_id: str) -> str:
        """Hash of exact integer counters of what the session's steps spent: "t|" (the session),
        "s|<step>|", "a|<agent>|", "m|<model>|" each followed by calls, prompt, completion,
        pico (pico-dollars), uncosted, uncounted, and per run cpu_us, wall_ms, runs
        (record_call.lua counts each model call once; orchestrator/store/costs.py), and
        "x|<model>|pico" / "x|<model>|tokens": the most one call to the model cost (budgets)."""
        return f"{self.session(session_id)}:costs"

    def routing(self, session_id: str) -> str:
        """Hash: step id -> JSON of why routing chose its agent, for policies that explain
        (scores by candidate, the policy's notes): the snapshot's ``routing``."""
        return f"{self.session(session_id)}:routing"

    def budget_holds(self, session_id: str) -> str:
        """Hash: "<step>|<agent>|c<n>" -> "<pico>|<tokens>|<until ms>", the expected cost of
        each model call in flight, held against the session's budget until the call is recorded
        (budget_gate.lua, record_call.lua)."""
        return f"{self.session(session_id)}:budget_holds"

    def lock(self, session_id: str, name: str) -> str:
        """A redis-py Lock (token-owned, with a TTL) scoped to the session."""
        return f"{self.session(session_id)}:lock:{name}"

    @property
    def sessions_index(self) -> str:
        """Sorted set: session id scored by creation time (ms)."""
        return f"{self.prefix}:sessions"

    def sessions_by_status(self, status: str) -> str:
        """Sorted set of the sessions in one status, by creation time (Lua maintains it)."""
        return f"{self.prefix}:sessions:status:{status}"

    @property
    def session_users(self) -> str:
        """Set of the user ids that have a sessions_by_user index (so housekeeping finds them)."""
        return f"{self.prefix}:sessions:users"

    def sessions_by_user(self, user_id: str) -> str:
        """Sorted set of one user's sessions, by creation time."""
        return f"{self.prefix}:sessions:user:{user_id}"

    @property
    def deadlines(self) -> str:
        """Sorted set: "<session id>|<step id>" scored by the time (ms) the step must be claimed
        or renew its lease by; the reconciler recovers what passes it."""
        return f"{self.prefix}:deadlines"

    @property
    def schedule_deadlines(self) -> str:
        """Sorted set: "<session id>|<step id>" of queued steps that no eligible live agent could
        take, scored by the time (ms) they fail unless one appears (MEOWSTIK_SCHEDULE_TIMEOUT_S).
        Cleared when the step is handed a slot, fails or is cancelled; the reconciler drops
        what it finds stale."""
        return f"{self.prefix}:schedule-deadlines"

    @property
    def input_deadlines(self) -> str:
        """Sorted set: "<session id>|<step id>" of steps waiting for input, by deadline (ms)."""
        return f"{self.prefix}:input-deadlines"

    @property
    def step_counts(self) -> str:
        """Hash "<capability>|<outcome>" -> steps (Lua keeps it; /metrics reads it)."""
        return f"{self.prefix}:metrics:steps"

    @property
    def step_durations(self) -> str:
        """Hash "<capability>|le=<bound s>" -> count (not cumulative) and "<capability>|sum_ms":
        the step duration histogram (Lua keeps it; the count is the buckets' sum)."""
        return f"{self.prefix}:metrics:step_seconds"

    @property
    def metrics_pending(self) -> str:
        """List of metric facts (JSON) the lifecycle scripts and add_run.lua appended and no
        fold has added yet to step_counts, step_durations, the agents' metrics hashes and the
        run counters of the cost hashes (_slots.lua ``fold_metrics``; fewer than 200 unless a
        fold failed, and none after a read)."""
        return f"{self.prefix}:metrics:pending"

    @property
    def cost_totals(self) -> str:
        """Hash of all-time cost counters: "am|<agent>|<model>|" and "u|<user>|" followed by
        calls, prompt, completion, pico, uncosted, uncounted; "a|<agent>|cpu_us" (the
        Prometheus counters and the per-user totals)."""
        return f"{self.prefix}:costs:totals"

    def cost_hour(self, hour: int) -> str:
        """Hash of one hour's cost counters (hours since the epoch) by "u|<user>|", "a|<agent>|",
        "m|<model>|", "ua|<user>|<agent>|", "um|<user>|<model>|" then calls, prompt,
        completion, pico, ...: GET /costs sums these; each expires MEOWSTIK_COST_HISTORY_DAYS
        after its hour. Sessions without a userId count under the user "-"."""
        return f"{self.prefix}:costs:hour:{hour}"

    @property
    def global_logs(self) -> str:
        """Capped stream of every session's log entries (trimmed to the retention)."""
        return f"{self.prefix}:logs"

    # --- agents and workers ---------------------------------------------------------------------
    def agent(self, agent_id: str) -> str:
        """Hash: the agent's definition fields, currentLoad, workers hosting it, heartbeat."""
        return f"{self.prefix}:agent:{agent_id}"

    def agent_slots(self, agent_id: str) -> str:
        """Sorted set: "<session id>|<step id>" scored by lease expiry (ms): the agent's load."""
        return f"{self.prefix}:agent:{agent_id}:slots"

    def agent_metrics(self, agent_id: str) -> str:
        """Hash: the agent's all-time step counters (started, succeeded, failed, failed|<error
        type>, retried, fallback, timed_out), the same per capability ("c|<cap>|<outcome>"),
        and run and queue-wait histograms ("run|le=<s>", "run|sum_ms", "wait|..."): the facts the
        lifecycle scripts append with each record, folded in (_slots.lua ``fold_metrics``)."""
        return f"{self.prefix}:agent:{agent_id}:metrics"

    def agent_metrics_window(self, agent_id: str, bucket: str) -> str:
        """Hash: the agent's counters of one time bucket ("m5-<n>", five minutes; "h1-<n>", an
        hour; n counts from the epoch), expiring after the longest window that reads it."""
        return f"{self.prefix}:agent:{agent_id}:metrics:{bucket}"

    def idempotency(self, scope: str) -> str:
        """String "<body digest>|<session id>": the session an Idempotency-Key made (``scope``:
        a digest of the caller's user id and the key), for MEOWSTIK_IDEMPOTENCY_TTL_S."""
        return f"{self.prefix}:idempotency:{scope}"

    @property
    def webhook_outbox(self) -> str:
        """Sorted set "<session id>|<end time ms>" -> when to (re)try delivering that ending to
        the session's callbackUrl (ms); added by the script that ends the session."""
        return f"{self.prefix}:webhooks:outbox"

    def deliveries(self, session_id: str) -> str:
        """List of JSON records: each attempt to deliver the session's webhook, oldest first."""
        return f"{self.session(session_id)}:deliveries"

    def experiment(self, name: str) -> str:
        """String: the experiment's JSON (orchestrator/core/experiments.py)."""
        return f"{self.prefix}:experiment:{name}"

    def experiment_sessions(self, name: str) -> str:
        """List of "<variant>|<session id>": the sessions assigned to the experiment."""
        return f"{self.prefix}:experiment:{name}:sessions"

    @property
    def experiments(self) -> str:
        """Sorted set: experiment names by creation time (ms)."""
        return f"{self.prefix}:experiments"

    @property
    def experiment_for_all(self) -> str:
        """String: the name of the running experiment every session joins (match "all")."""
        return f"{self.prefix}:experiments:all"

    def agent_failures(self, agent_id: str) -> str:
        """Sorted set of recent failure times (ms), for the circuit breaker."""
        return f"{self.prefix}:agent:{agent_id}:failures"

    def waiting(self, capability: str) -> str:
        """List of steps waiting for a free slot, by their first capability."""
        return f"{self.prefix}:waiting:{capability}"

    @property
    def agents_index(self) -> str:
        """Set of the ids of every registered agent."""
        return f"{self.prefix}:agents"

    def rate_limit(self, caller: str) -> str:
        """String with TTL: the caller's theoretical arrival time in us (GCRA rate limit)."""
        return f"{self.prefix}:ratelimit:{caller}"

    @property
    def autoscaler(self) -> str:
        """JSON status of `meowstik up --autoscale`, expiring when it stops looking."""
        return f"{self.prefix}:autoscaler"

    @property
    def remote_executor_alive(self) -> str:
        """String with TTL: until when (ms) some remote-executor worker is known alive."""
        return f"{self.prefix}:executor:remote:aliveUntil"

    @property
    def llm_executor_alive(self) -> str:
        """String with TTL: until when (ms) some remote-executor worker with an LLM configured
        (MEOWSTIK_LLM_BASE_URL) is known alive: only those run LLM agents."""
        return f"{self.prefix}:executor:llm:aliveUntil"

    @property
    def remote_agents_index(self) -> str:
        """Set of the ids of HTTP and LLM agents (executed by remote-executor workers)."""
        return f"{self.prefix}:agents:remote"

    def worker(self, name: str) -> str:
        """Hash: a worker process's info JSON (queues, agents, pid, concurrency), lastHeartbeat,
        aliveUntil (ms)."""
        return f"{self.prefix}:worker:{name}"

    @property
    def workers_index(self) -> str:
        """Set of the names of workers that have heartbeated (offline ones are forgotten)."""
        return f"{self.prefix}:workers"

    def capability_agents(self, capability: str) -> str:
        """Set of the ids of the agents that have one capability (routing intersects them)."""
        return f"{self.prefix}:capability:{capability}:agents"

    # --- the Celery broker (kombu's Redis transport) ---------------------------------------------
    def broker(self, name: str) -> str:
        """A key kombu keeps for this deployment: a queue's list of waiting messages (``name`` is
        the queue, e.g. ``agent.coder-001``), ``unacked``/``unacked_index``/``unacked_mutex``,
        ``_kombu.binding.<exchange>``, pidbox reply queues. kombu prefixes its keys (and its
        pub/sub channels) itself with ``broker("")``, given to it as ``global_keyprefix``
        (workers/celery_app.py), so deployments with different prefixes on one Redis database
        share no queue; code that reads a queue with its own client (LLEN) names it here."""
        return f"{self.prefix}:broker:{name}"

    # --- what the families above make ------------------------------------------------------------
    def session_owned(self, session_id: str) -> tuple[str, ...]:
        """Every key of the session named by a family that takes the session id alone: what
        retention expires when the session ends (Lua's ``session_owned_keys`` is rendered from
        this). The session also owns keys with a second id, reached through indexes in this list:
        ``private_state`` per agent (``private_state_index``) and ``temporary_state`` entries
        (``temporary_state_index``, each with its own TTL); a ``lock`` always has its TTL."""
        return tuple(family.key(self, session_id) for family in SESSION_KEY_FAMILIES)

    def family_of(self, key: str) -> str | None:
        """The name of the family ``key`` belongs to (e.g. ``"agent_slots"``), or None when no
        method of Keys makes it. When two could (an id holding ``:``), the one with more literal
        text wins: ``<prefix>:agent:a:slots`` is ``agent_slots``, not ``agent`` of ``a:slots``."""
        found = [
            (weight, name)
            for weight, name, pattern in _patterns(self.prefix)
            if pattern.fullmatch(key)
        ]
        return max(found)[1] if found else None


_MARK = "\x00"
PREFIX_PARAMETER = "prefix"


def spell(build: Callable[..., str], params: tuple[str, ...]) -> tuple[str, ...]:
    """How ``build`` spells its result, as pieces: literal, parameter name, literal, ..., literal.

    ``build`` is called with a marker for each parameter; the markers' places in the result are
    the parameters' places. Raises ValueError if a parameter is not used exactly once.
    """
    built = build(*(f"{_MARK}{name}{_MARK}" for name in params))
    pieces = tuple(re.split(f"{_MARK}(\\w+){_MARK}", built))
    used = pieces[1::2]
    if sorted(used) != sorted(params) or _MARK in "".join(pieces[::2]):
        raise ValueError(f"{build!r} must use each of {params} once, and only them: {built!r}")
    return pieces


@dataclass(frozen=True)
class KeyFamily:
    """One kind of key: the member of Keys that names it, and the ids it takes."""

    name: str
    params: tuple[str, ...]
    is_property: bool

    def key(self, keys: Keys, *ids: str) -> str:
        member = getattr(keys, self.name)
        return member if self.is_property else member(*ids)

    def template(self) -> tuple[str, ...]:
        """The family's keys as pieces (see ``spell``): its parameters are ``prefix`` and its
        ids, e.g. ``("", "prefix", ":agent:", "agent_id", ":slots")``."""
        return spell(
            lambda prefix, *ids: self.key(Keys(prefix), *ids), (PREFIX_PARAMETER, *self.params)
        )

    @property
    def session_owned(self) -> bool:
        return self.params[:1] == ("session_id",)


def _families() -> tuple[KeyFamily, ...]:
    found = []
    for name, member in vars(Keys).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            found.append(KeyFamily(name, (), is_property=True))
        elif inspect.isfunction(member) and member.__annotations__.get("return") == "str":
            params = tuple(inspect.signature(member).parameters)[1:]
            found.append(KeyFamily(name, params, is_property=False))
    return tuple(found)


FAMILIES: tuple[KeyFamily, ...] = _families()
"""Every family of keys, in the order Keys defines them."""

SESSION_KEY_FAMILIES: tuple[KeyFamily, ...] = tuple(
    family for family in FAMILIES if family.params == ("session_id",)
)
"""The families of which a session owns exactly one key (``Keys.session_owned``)."""


@cache
def _patterns(prefix: str) -> tuple[tuple[int, str, re.Pattern[str]], ...]:
    """(literal length, family name, full-match pattern) of every family under ``prefix``."""
    out = []
    for family in FAMILIES:
        pieces = family.template()
        parts = [re.escape(piece) for piece in pieces[::2]]
        ids = [re.escape(prefix) if name == PREFIX_PARAMETER else "(.+)" for name in pieces[1::2]]
        regex = "".join(part + id_ for part, id_ in zip(parts, [*ids, ""], strict=True))
        out.append((sum(map(len, pieces[::2])), family.name, re.compile(regex, re.DOTALL)))
    return tuple(out)
