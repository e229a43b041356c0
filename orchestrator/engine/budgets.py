"""Budgets while a session runs (orchestrator/core/budgets.py says the rule): the gate a worker
passes before each new model call and before a step starts, and the three ways a pause ends:
an answer raising the budget (or PATCH .../budget), an answer saying stop, or the deadline
(MEOWSTIK_BUDGET_DECISION_TIMEOUT_S), after which the session fails with BudgetExceeded."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from orchestrator.core.budgets import (
    BUDGET_ANSWER_SCHEMA,
    BUDGET_ERROR,
    SessionBudget,
    check_raise,
    exceeded_message,
    merged_budget,
)
from orchestrator.core.errors import (
    BudgetValueError,
    SessionFinishedError,
    SessionNotFoundError,
)
from orchestrator.core.ids import job_id
from orchestrator.core.logentry import LogEntry, iso_from_ms
from orchestrator.core.models import BudgetRequest, StepErrorRecord
from orchestrator.engine.context import EngineContext
from orchestrator.engine.outcomes import Outcomes
from orchestrator.engine.routing import Router, RouteRequest
from orchestrator.store.budgets import GateVerdict

BUSY_WAIT_S = (0.02, 0.05, 0.1, 0.2, 0.5)
HOLD_MARGIN_MS = 30_000


class CallRefused(BaseException):  # noqa: N818 - a signal, like GeneratorExit
    """Raised out of a model call that may not be made: the session's budget parked the step
    (``parked``), the session ended, or the run no longer owns the step. A BaseException so
    that an agent's ``except Exception`` does not swallow it; the worker catches it and leaves
    the step as it is (parked, or someone else's)."""

    def __init__(self, reason: str, parked: bool = False) -> None:
        super().__init__(reason)
        self.parked = parked


class Budgets:
    def __init__(
        self,
        context: EngineContext,
        router: Router,
        outcomes: Outcomes,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.context = context
        self.router = router
        self.outcomes = outcomes
        self.store = context.sessions.budgets
        self.settings = context.settings
        self._sleep = sleep

    # --- the gate (workers) ---------------------------------------------------------------------
    def before_call(
        self, session_id: str, step_id: str, agent_id: str, *, token: str, hold: str, model: str
    ) -> None:
        """Hold the call's expected cost, or park the step and raise CallRefused (also raised
        when the session ended or the run lost the step). A call whose cost is not known yet
        waits while other calls of the session are in flight."""
        waits = iter(BUSY_WAIT_S)
        while True:
            now = self.context.now_ms()
            verdict = self.store.gate(
                session_id,
                step_id,
                agent_id,
                token=token,
                now_ms=now,
                reserve_ms=self.context.reserve_ms,
                hold=hold,
                hold_until_ms=now + self._hold_ms(),
                model=model,
                request=self._request(now),
            )
            if verdict.code != "busy":
                break
            self._sleep(next(waits, BUSY_WAIT_S[-1]))
        if verdict.code == "parked":
            self._parked(session_id, step_id, agent_id, verdict)
            raise CallRefused((verdict.request or {}).get("question", "budget"), parked=True)
        if verdict.code in ("ended", "stale"):  # its result would be refused: do not pay for it
            raise CallRefused(f"no model call: {verdict.code} ({verdict.detail})")

    def park_unstarted(self, session_id: str, step_id: str, agent_id: str) -> str:
        """A step whose claim found the budget paused or spent does not start: park it on the
        budget request (its reservation freed). Returns the gate's code."""
        now = self.context.now_ms()
        verdict = self.store.gate(
            session_id,
            step_id,
            agent_id,
            token="",
            now_ms=now,
            reserve_ms=self.context.reserve_ms,
            hold="",
            hold_until_ms=0,
            model="",
            request=self._request(now),
        )
        if verdict.code == "parked":
            self._parked(session_id, step_id, agent_id, verdict)
        return verdict.code

    def release_hold(self, session_id: str, hold: str) -> None:
        self.store.release_hold(session_id, hold)

    def _hold_ms(self) -> int:
        """How long a call's hold lasts if its worker dies mid-call: its longest possible run."""
        tries = self.settings.http_agent_max_retries + 1
        return int(self.settings.llm_timeout_s * 1000 * tries) + HOLD_MARGIN_MS

    def _request(self, now: int) -> dict[str, Any]:
        deadline = now + int(self.settings.budget_decision_timeout_s * 1000)
        return {
            "question": 'Answer {"raiseTo": <dollars>} to raise the budget and go on, or '
            '{"stop": true} to stop the session.',
            "schema": BUDGET_ANSWER_SCHEMA,
            "reason": "budget",
            "requestedAt": iso_from_ms(now),
            "deadline": iso_from_ms(deadline),
            "deadlineMs": deadline,
            "onTimeout": "stop",
        }

    def _parked(self, session_id: str, step_id: str, agent_id: str, verdict: GateVerdict) -> None:
        self.router.dispatch_handoffs(verdict.handed)
        request = verdict.request or {}
        if verdict.paused_now:
            self.context.log(
                LogEntry(
                    "warn",
                    "orchestrator",
                    "Budget reached",
                    session_id=session_id,
                    task_id=step_id,
                    agent_id=agent_id,
                    data={
                        key: request.get(key)
                        for key in ("spentUsd", "maxCostUsd", "spentTokens", "maxTokens")
                        if key in request
                    }
                    | {"deadline": request.get("deadline")},
                )
            )
        self.context.log(
            LogEntry(
                "info",
                "task",
                "Step waiting for input",
                session_id=session_id,
                agent_id=agent_id,
                task_id=step_id,
                data={
                    "question": request.get("question"),
                    "deadline": request.get("deadline"),
                    "reason": "budget",
                },
            )
        )

    # --- ending a pause (the API, the reconciler) -----------------------------------------------
    def view(self, session_id: str) -> SessionBudget | None:
        status, budget = self.store.read(session_id)
        if status is None:
            raise SessionNotFoundError(session_id)
        return budget

    def change(self, session_id: str, change: BudgetRequest, *, by: str) -> None:
        """Set new limits (PATCH .../budget, or an answer's raiseTo). A pause they leave room
        for ends: the parked steps run again from where they stopped."""
        status, current = self.store.read(session_id)
        if status is None:
            raise SessionNotFoundError(session_id)
        if status not in ("executing", "waiting_for_input"):
            raise SessionFinishedError(session_id, status)
        if change.max_cost_usd is not None and current is not None and current.paused:
            check_raise(current, change.max_cost_usd, "body.maxCostUsd")
        fields = self.context.sessions.budget_field(session_id)
        result = self.store.set(
            session_id,
            merged_budget(fields, change),
            now_ms=self.context.now_ms(),
            reserve_ms=self.context.reserve_ms,
        )
        if result.code == "ended":
            raise SessionFinishedError(session_id, result.detail)
        _, after = self.store.read(session_id)
        raised = result.code == "resumed" or _raised(current, after)
        self.context.log(
            LogEntry(
                "info",
                "orchestrator",
                "Budget raised" if raised else "Budget changed",
                session_id=session_id,
                data={
                    "by": by,
                    "maxCostUsd": after.max_cost_usd if after else None,
                    "maxTokens": after.max_tokens if after else None,
                    "spentUsd": after.spent_usd if after else None,
                    "resumed": [step_id for step_id, _ in result.resumed],
                },
            )
        )
        if result.resumed:
            requests = [RouteRequest.from_record(step_id, rec) for step_id, rec in result.resumed]
            self.router.route(session_id, requests)

    def answer(self, session_id: str, value: dict[str, Any], *, by: str) -> None:
        """An answer to the budget request (validated against BUDGET_ANSWER_SCHEMA)."""
        if value.get("stop") is True:
            self.stop(session_id, by=by)
            return
        budget = self.view(session_id)
        check_raise(budget, value["raiseTo"], "value.raiseTo")
        if budget is not None and budget.max_tokens is not None:
            if budget.spent_tokens >= budget.max_tokens:
                raise BudgetValueError(
                    "value.raiseTo",
                    f"the session also used its {budget.max_tokens} tokens; raise maxTokens "
                    f"with PATCH /api/orchestrator/sessions/{session_id}/budget first, or "
                    'answer {"stop": true}',
                )
        self.change(session_id, BudgetRequest(max_cost_usd=value["raiseTo"]), by=by)

    def stop(self, session_id: str, *, by: str) -> None:
        """End the session failed with BudgetExceeded and what it spent."""
        budget = self.view(session_id)
        message = exceeded_message(budget, by)
        now = self.context.now_ms()
        error = StepErrorRecord(
            step_id="",
            job_id=job_id(session_id, ""),
            error_type=BUDGET_ERROR,
            message=message,
            attempt=0,
            timestamp=iso_from_ms(now) or "",
        )
        entry = LogEntry(
            "error",
            "orchestrator",
            "Budget exceeded; session stopped",
            session_id=session_id,
            error=f"{BUDGET_ERROR}: {message}",
            data={
                "by": by,
                **(budget.model_dump(by_alias=True, exclude={"request"}) if budget else {}),
            },
        )
        result = self.context.sessions.cancel(
            session_id,
            now_ms=now,
            reserve_ms=self.context.reserve_ms,
            logs=[entry],
            budget_error_json=error.model_dump_json(by_alias=True),
        )
        if result.code == "missing":
            raise SessionNotFoundError(session_id)
        if result.code in ("finished", "already"):
            raise SessionFinishedError(session_id, result.detail or "failed")
        self.router.dispatch_handoffs(result.handed)
        self.outcomes.note_end(session_id, "failed")
        if result.running:
            self.context.dispatcher.revoke([job_id(session_id, s) for s in result.running])


def _raised(before: SessionBudget | None, after: SessionBudget | None) -> bool:
    """Whether a change raised a limit (or set one where there was none: not a raise)."""
    if before is None or after is None:
        return False
    cost = (
        before.max_cost_usd is not None
        and after.max_cost_usd is not None
        and Decimal(after.max_cost_usd) > Decimal(before.max_cost_usd)
    )
    tokens = (
        before.max_tokens is not None
        and after.max_tokens is not None
        and after.max_tokens > before.max_tokens
    )
    return cost or tokens
