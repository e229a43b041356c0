"""Every Redis key and queue name, as functions of ids, under one configurable prefix.

A session's keys share the hash tag ``{<session id>}`` so that a Lua script touching them stays in
one slot, should the deployment ever move to a slot-aware proxy.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
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

    def lock(self, session_id: str, name: str) -> str:
        """A redis-py Lock (token-owned, with a TTL) scoped to the session."""
        return f"{self.session(session_id)}:lock:{name}"

    def session_keys(self, session_id: str) -> list[str]:
        """Every key a session owns (for retention and deletion)."""
        return [
            self.session(session_id),
            self.steps(session_id),
            self.plan(session_id),
            self.depends(session_id),
            self.children(session_id),
            self.remaining(session_id),
            self.results(session_id),
            self.shared_state(session_id),
            self.errors(session_id),
            self.input_requests(session_id),
            self.answers(session_id),
            self.session_logs(session_id),
            self.private_state_index(session_id),
            self.temporary_state_index(session_id),
        ]

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
        or renew its lease by; the reconciler recovers what passes it (Lua builds it too)."""
        return f"{self.prefix}:deadlines"

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
    def global_logs(self) -> str:
        return f"{self.prefix}:logs"

    # --- agents and workers ---------------------------------------------------------------------
    def agent(self, agent_id: str) -> str:
        """Hash: the agent's definition fields, currentLoad, workers hosting it, heartbeat."""
        return f"{self.prefix}:agent:{agent_id}"

    def agent_slots(self, agent_id: str) -> str:
        """Sorted set: "<session id>|<step id>" scored by lease expiry (ms): the agent's load.
        (Lua builds this name too: orchestrator/store/lua/_slots.lua.)"""
        return f"{self.prefix}:agent:{agent_id}:slots"

    def agent_failures(self, agent_id: str) -> str:
        """Sorted set of recent failure times (ms), for the circuit breaker."""
        return f"{self.prefix}:agent:{agent_id}:failures"

    def waiting(self, capability: str) -> str:
        """List of steps waiting for a free slot, by their first capability (Lua builds it too)."""
        return f"{self.prefix}:waiting:{capability}"

    @property
    def agents_index(self) -> str:
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
        return f"{self.prefix}:capability:{capability}:agents"
