"""The reconciler: finds steps whose deadline passed and puts them back to work.

A step's deadline is the time by which it must be claimed (after routing) or renew its lease
(while running). It passes when a worker died mid-step (SIGKILL, OOM, power), when a message was
lost between our record and the broker, or when the agent's worker vanished with messages in its
queue. Kombu would bring an unacked message back only after its visibility timeout (an hour by
default, FIELD-NOTES measured 86-95 s at 30 s); the reconciler reroutes within a lease plus a
heartbeat. Every worker runs it on its heartbeat; the Lua script makes concurrent runs safe.

It also ends two kinds of waiting: a step whose operator did not answer in time (input
deadlines), and a step no live agent could take before its schedule deadline
(MEOWSTIK_SCHEDULE_TIMEOUT_S, core/availability.py), which fails with ``ScheduleTimeout``
unless an eligible agent exists by then (it is busy: the step keeps waiting for capacity).
"""

from __future__ import annotations

from orchestrator.core.availability import (
    SCHEDULE_TIMEOUT_ERROR,
    WAITING_FOR_AGENT,
    schedule_timeout_message,
)
from orchestrator.core.errors import OrchestratorError
from orchestrator.core.logentry import LogEntry
from orchestrator.engine.context import EngineContext
from orchestrator.engine.control import Control
from orchestrator.engine.outcomes import Outcomes
from orchestrator.engine.routing import Router, RouteRequest


class Reconciler:
    def __init__(
        self, context: EngineContext, router: Router, outcomes: Outcomes, control: Control
    ) -> None:
        self.context = context
        self.router = router
        self.outcomes = outcomes
        self.control = control
        self.sessions = context.sessions
        self.settings = context.settings

    def run_once(self) -> list[tuple[str, str, str]]:
        """Recover every step past its deadline. Returns (session, step, outcome) per step."""
        now = self.context.now_ms()
        outcomes = []
        for session_id, step_id in self.sessions.due_deadlines(now):
            recovery = self.sessions.recover(
                session_id,
                step_id,
                now_ms=now,
                reserve_ms=self.context.reserve_ms,
                max_deliveries=self.settings.max_deliveries,
            )
            if recovery.code == "reroute":
                self.router.dispatch_handoffs(recovery.handed)
                self._log(
                    session_id,
                    step_id,
                    "warn",
                    "Step recovered after its deadline passed",
                    {"recoveries": recovery.record.get("recoveries")},
                    now,
                )
                self.router.route(session_id, [RouteRequest.from_record(step_id, recovery.record)])
            elif recovery.code == "dead":
                self._dead_letter(session_id, step_id, recovery.deliveries)
            outcomes.append((session_id, step_id, recovery.code))
        outcomes += self._expire_inputs(now)
        outcomes += self._expire_schedules(now)
        self.sessions.metrics_fold.before_read()  # so no fact waits long for a reader
        return outcomes

    def _expire_schedules(self, now: int) -> list[tuple[str, str, str]]:
        """Steps that waited for an agent past their schedule deadline: failed with a message
        saying what they need and how to provide it, unless an eligible (busy) agent exists now:
        then they keep waiting, for capacity (outcome ``schedule_capacity``)."""
        outcomes = []
        for session_id, step_id in self.sessions.due_schedule_deadlines(now):
            record = self.sessions.step_record(session_id, step_id)
            if record.get("status") != "queued" or record.get("waitingFor") != WAITING_FOR_AGENT:
                self.sessions.clear_schedule_deadline(session_id, step_id)
                continue
            request = RouteRequest.from_record(step_id, record)
            message = schedule_timeout_message(
                step_id,
                request.capabilities,
                self.context.registry.candidates(request.capabilities, now),
                timeout_s=self.sessions.schedule_timeout_ms(session_id) / 1000,
                agent_type=request.agent_type,
                excluded=request.excluded,
            )
            entry = LogEntry(
                "error",
                "orchestrator",
                "Step schedule timed out",
                session_id=session_id,
                task_id=step_id,
                error=f"{SCHEDULE_TIMEOUT_ERROR}: {message}",
                data={"capabilities": list(request.capabilities)},
            )
            transition = self.outcomes.fail_step(
                session_id,
                step_id,
                error_type=SCHEDULE_TIMEOUT_ERROR,
                message=message,
                entry=entry,
                unschedulable_only=True,
            )
            if transition.code in ("duplicate", "missing"):
                self.sessions.clear_schedule_deadline(session_id, step_id)
            code = {"ok": "schedule_timeout", "eligible": "schedule_capacity"}
            outcomes.append((session_id, step_id, code.get(transition.code, "schedule_gone")))
        return outcomes

    def _expire_inputs(self, now: int) -> list[tuple[str, str, str]]:
        """Steps whose operator did not answer in time: the default answer, or failure."""
        outcomes = []
        for session_id, step_id in self.sessions.inputs.due_input_deadlines(now):
            request = self.sessions.inputs.input_request(session_id, step_id)
            if request is None:
                self.sessions.inputs.clear_input_deadline(session_id, step_id)
                continue
            if request.get("reason") == "budget":
                try:
                    self.control.budgets.stop(session_id, by="deadline")
                    outcomes.append((session_id, step_id, "budget_stopped"))
                except OrchestratorError:
                    self.sessions.inputs.clear_input_deadline(session_id, step_id)
                continue
            if request.get("onTimeout") == "default":
                try:
                    self.control.resume(session_id, step_id, request.get("default"), by="default")
                    outcomes.append((session_id, step_id, "input_default"))
                except OrchestratorError:
                    self.sessions.inputs.clear_input_deadline(session_id, step_id)
                continue
            message = (
                f"no operator input before the deadline {request.get('deadline')}: "
                f"{request.get('question')}"
            )
            self._fail_unclaimed(
                session_id,
                step_id,
                error_type="InputTimeout",
                message=message,
                entry=LogEntry(
                    "warn",
                    "orchestrator",
                    "Step input timed out",
                    session_id=session_id,
                    task_id=step_id,
                    error=message,
                ),
            )
            self.sessions.inputs.clear_input_deadline(session_id, step_id)
            outcomes.append((session_id, step_id, "input_timeout"))
        return outcomes

    def _dead_letter(self, session_id: str, step_id: str, deliveries: int) -> None:
        message = (
            f"dead-lettered: the step's worker died {deliveries} times while running it "
            f"(MEOWSTIK_MAX_DELIVERIES={self.settings.max_deliveries}); check the agent for "
            "crashes or memory exhaustion"
        )
        entry = LogEntry(
            "error",
            "orchestrator",
            "Step dead-lettered",
            session_id=session_id,
            task_id=step_id,
            error=message,
            data={"deliveries": deliveries},
        )
        self._fail_unclaimed(
            session_id,
            step_id,
            error_type="DeadLettered",
            message=message,
            entry=entry,
            attempt=deliveries,
        )

    def _fail_unclaimed(
        self,
        session_id: str,
        step_id: str,
        *,
        error_type: str,
        message: str,
        entry: LogEntry,
        attempt: int = 0,
    ) -> None:
        """Fail a step no run owns (its owner died, or it waited for input in vain)."""
        self.outcomes.fail_step(
            session_id,
            step_id,
            error_type=error_type,
            message=message,
            entry=entry,
            attempt=attempt,
        )

    def _log(
        self, session_id: str, step_id: str, level: str, message: str, data: dict, now: int
    ) -> None:
        self.sessions.log(
            LogEntry(
                level, "orchestrator", message, session_id=session_id, task_id=step_id, data=data
            ),
            now,
        )
