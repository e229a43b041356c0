"""What follows a recorded transition, written once: the steps freed slots were handed to are
dispatched, a session's end is logged once (by the call that ended it), and a step failure is
recorded the one way every failer uses: a run that gave up, a step never dispatched, one an
operator revoked, one whose worker kept dying, one whose operator never answered."""

from __future__ import annotations

from orchestrator.core.ids import job_id
from orchestrator.core.logentry import LogEntry, iso_from_ms
from orchestrator.core.models import StepErrorRecord
from orchestrator.engine.context import EngineContext
from orchestrator.engine.routing import Router
from orchestrator.store.scripts import Transition


class Outcomes:
    def __init__(self, context: EngineContext, router: Router) -> None:
        self.context = context
        self.router = router

    def settle(self, session_id: str, transition: Transition) -> None:
        """Dispatch what freed slots were handed to; log the end if this call ended the session."""
        self.router.dispatch_handoffs(transition.handed)
        if transition.ended:
            self.note_end(session_id, transition.session_status)

    def note_end(self, session_id: str, status: str) -> None:
        """Log the session's end once (the call that ended it says so): the last SSE event."""
        self.context.log(
            LogEntry(
                "info",
                "orchestrator",
                "Session finished",
                session_id=session_id,
                data={"status": status},
            )
        )

    def fail_step(
        self,
        session_id: str,
        step_id: str,
        *,
        error_type: str,
        message: str,
        entry: LogEntry,
        token: str = "",
        agent_id: str | None = None,
        attempt: int = 0,
        step_message: str | None = None,
        unschedulable_only: bool = False,
    ) -> Transition:
        """Record the step failed (once: a stale ``token`` changes nothing) and apply the
        session's failure policy, then settle what that freed.

        Args:
            message: the error record's message (the snapshot's ``errors``).
            entry: the log entry written with the record, in the same round trip.
            token: the run's token when a run gives up; "" when no run owns the step.
            step_message: the step record's ``error`` text, when it differs from ``message``.
            unschedulable_only: a schedule timeout: fail only a step still waiting for an
                agent while none is eligible, decided in the script (``code`` ``eligible`` or
                ``stale`` otherwise); ``entry`` is then written only if it failed.
        """
        now = self.context.now_ms()
        error = StepErrorRecord(
            step_id=step_id,
            job_id=job_id(session_id, step_id),
            agent_id=agent_id,
            error_type=error_type,
            message=message,
            attempt=attempt,
            timestamp=iso_from_ms(now) or "",
        )
        transition = self.context.sessions.fail(
            session_id,
            step_id,
            token=token,
            now_ms=now,
            message=step_message if step_message is not None else message,
            error_json=error.model_dump_json(by_alias=True),
            reserve_ms=self.context.reserve_ms,
            logs=[] if unschedulable_only else [entry],
            unschedulable_only=unschedulable_only,
        )
        if unschedulable_only and transition.code == "ok":
            self.context.log(entry)
        self.settle(session_id, transition)
        return transition
