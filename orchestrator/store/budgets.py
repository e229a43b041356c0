"""Session budgets in Redis: the gate a worker passes before each new model call and before a step
starts (budget_gate.lua), the holds of calls in flight, and changing a budget (budget_set.lua).
The rule is orchestrator/core/budgets.py's."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import redis

from orchestrator.core.budgets import SessionBudget, session_budget
from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.runner import ScriptRunner
from orchestrator.store.scripts import Handoff, handoffs, text


@dataclass
class GateVerdict:
    """Reply of budget_gate: ``code`` is ok, none (no budget), busy, parked, stale or ended."""

    code: str
    detail: str = ""
    handed: list[Handoff] = field(default_factory=list)
    paused_now: bool = False
    request: dict | None = None


@dataclass
class BudgetChange:
    """Reply of budget_set: ``code`` is ok, resumed, paused or ended; ``resumed`` holds the
    (step id, step record) pairs queued again."""

    code: str
    detail: str = ""
    resumed: list[tuple[str, dict]] = field(default_factory=list)


@translates_redis_errors
class BudgetStore:
    def __init__(self, client: redis.Redis, keys: Keys, run: ScriptRunner) -> None:
        self._client, self._keys, self._run = client, keys, run

    def gate(
        self,
        sid: str,
        step_id: str,
        agent_id: str,
        *,
        token: str,
        now_ms: int,
        reserve_ms: int,
        hold: str,
        hold_until_ms: int,
        model: str,
        request: dict,
    ) -> GateVerdict:
        """Check the budget before a model call (``hold`` its field, ``token`` the run's) or a
        step's start (``hold`` and ``token`` ""). See budget_gate.lua."""
        k = self._keys
        keys = [k.session(sid), k.steps(sid), k.input_requests(sid), k.costs(sid)]
        keys.append(k.budget_holds(sid))
        args = [
            k.prefix,
            sid,
            step_id,
            agent_id,
            token,
            now_ms,
            reserve_ms,
            hold,
            hold_until_ms,
            model.replace("|", "/"),
            json.dumps(request, separators=(",", ":")),
        ]
        reply = self._run("budget_gate", keys, args)
        code = text(reply[0])
        if code != "parked":
            return GateVerdict(code, text(reply[1]) if len(reply) > 1 else "")
        return GateVerdict(
            code,
            handed=handoffs(reply[1]),
            paused_now=int(reply[2]) == 1,
            request=json.loads(text(reply[3])),
        )

    def release_hold(self, sid: str, hold: str) -> None:
        """A call that failed before it was recorded no longer holds its expected cost."""
        self._client.hdel(self._keys.budget_holds(sid), hold)

    def set(self, sid: str, budget_json: str, *, now_ms: int, reserve_ms: int) -> BudgetChange:
        """Replace the session's budget; a pause it ends queues the parked steps again."""
        k = self._keys
        keys = [k.session(sid), k.steps(sid), k.input_requests(sid), k.costs(sid)]
        args = [k.prefix, sid, now_ms, reserve_ms, budget_json]
        reply = self._run("budget_set", keys, args)
        code = text(reply[0])
        if code == "resumed":
            flat = [text(item) for item in reply[1]]
            pairs = [(flat[i], json.loads(flat[i + 1])) for i in range(0, len(flat), 2)]
            return BudgetChange(code, resumed=pairs)
        return BudgetChange(code, text(reply[1]) if len(reply) > 1 else "")

    def read(self, sid: str) -> tuple[str | None, SessionBudget | None]:
        """The session's status and budget view (None: no budget, or no session)."""
        pipe = self._client.pipeline(transaction=False)
        pipe.hmget(self._keys.session(sid), "status", "budget", "budgetPause")
        pipe.hgetall(self._keys.costs(sid))
        (status, budget, pause), raw = pipe.execute()
        counters = {text(name): int(value) for name, value in raw.items()}
        view = session_budget(
            text(budget) if budget else None, text(pause) if pause else None, counters
        )
        return (text(status) if status else None), view
