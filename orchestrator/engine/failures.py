"""The failure path of a step run: retry on the same agent with backoff, fall back to another
agent with the same capabilities, or fail the step and apply the session's failure policy.
Every failure also counts against the agent's circuit breaker. StepLifecycle holds one."""

from __future__ import annotations

import math
from collections.abc import Sequence

from orchestrator.core.dispatch import StepDispatch
from orchestrator.core.errors import (
    LockTimeoutError,
    PermanentStepError,
    RetryableStepError,
    StateConflictError,
)
from orchestrator.core.logentry import LogEntry, iso_from_ms
from orchestrator.core.step_runs import StepRun
from orchestrator.engine.context import EngineContext
from orchestrator.engine.outcomes import Outcomes
from orchestrator.engine.routing import Router, RouteRequest
from orchestrator.settings import Settings
from orchestrator.store.scripts import Transition

RETRYABLE_TYPES: tuple[type[BaseException], ...] = (
    RetryableStepError,
    StateConflictError,  # a transaction lost a race: run it again
    LockTimeoutError,  # a session lock stayed held: try again later
    TimeoutError,
    ConnectionError,
)


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, RETRYABLE_TYPES) and not isinstance(exc, PermanentStepError)


def backoff_s(settings: Settings, attempt: int) -> float:
    """Exponential backoff before attempt ``attempt + 1``."""
    return min(settings.retry_backoff_max_s, settings.retry_backoff_s * math.pow(2, attempt - 1))


class StepFailures:
    """What happens when a run raised."""

    def __init__(self, context: EngineContext, router: Router, outcomes: Outcomes) -> None:
        self.context = context
        self.router = router
        self.outcomes = outcomes
        self.settings = context.settings

    def fail(self, run: StepRun, exc: BaseException) -> Transition:
        """Retry on the same agent while attempts remain for a retryable error; then fall back to
        another agent with the same capabilities; then fail the step."""
        message = f"{type(exc).__name__}: {exc}"
        self._count_failure(run)
        if is_retryable(exc) and run.agent_attempt < run.max_attempts:
            return self._retry(run, message, getattr(exc, "retry_after_s", None))
        step = run.step_input.step
        failed_on = self._failed_agents(run)
        if len(failed_on) <= self.settings.max_fallbacks and self.router.has_fallback(
            step.required_capabilities, step.agent_type, failed_on
        ):
            return self._fall_back(run, message)
        return self._fail(run, exc, message)

    def _failed_agents(self, run: StepRun) -> list[str]:
        record = self.context.sessions.step_record(run.session_id, run.step_id)
        return [*(record.get("failedAgents") or []), run.agent_id]

    def _count_failure(self, run: StepRun) -> None:
        now = self.context.now_ms()
        open_until = self.context.registry.record_failure(
            run.agent_id,
            now_ms=now,
            window_ms=int(self.settings.circuit_window_s * 1000),
            threshold=self.settings.circuit_failure_threshold,
            cooldown_ms=int(self.settings.circuit_cooldown_s * 1000),
        )
        if open_until:
            self.context.sessions.log(
                LogEntry(
                    "warn",
                    "agent",
                    f"Circuit opened for agent {run.agent_id}",
                    session_id=run.session_id,
                    agent_id=run.agent_id,
                    task_id=run.step_id,
                    data={
                        "openUntil": iso_from_ms(open_until),
                        "threshold": self.settings.circuit_failure_threshold,
                        "windowS": self.settings.circuit_window_s,
                    },
                ),
                now,
            )

    def _retry(self, run: StepRun, message: str, retry_after_s: float | None = None) -> Transition:
        """Requeue on the same agent after the backoff, or after what the failed service asked
        for (a model's Retry-After) when that is longer, up to MEOWSTIK_RETRY_BACKOFF_MAX_S."""
        delay_s = backoff_s(self.settings, run.agent_attempt)
        if isinstance(retry_after_s, int | float) and retry_after_s > delay_s:
            delay_s = min(float(retry_after_s), max(delay_s, self.settings.retry_backoff_max_s))
        entry = LogEntry(
            "warn",
            "task",
            "Step retrying",
            session_id=run.session_id,
            agent_id=run.agent_id,
            task_id=run.step_id,
            error=message,
            data={"attempt": run.agent_attempt, "maxAttempts": run.max_attempts, "delayS": delay_s},
        )
        transition = self._requeue(
            run, message, reroute=False, backoff_ms=int(delay_s * 1000), logs=[entry]
        )
        if transition.code == "ok":
            self.context.dispatcher.dispatch(
                [StepDispatch.of(run.session_id, run.step_id, run.queue, run.agent_id)],
                countdown_s=delay_s,
            )
        return transition

    def _requeue(
        self,
        run: StepRun,
        message: str,
        *,
        reroute: bool,
        backoff_ms: int = 0,
        logs: Sequence[LogEntry] = (),
    ) -> Transition:
        return self.context.sessions.requeue(
            run.session_id,
            run.step_id,
            token=run.token,
            now_ms=self.context.now_ms(),
            message=message,
            reroute=reroute,
            agent_id=run.agent_id,
            reserve_ms=self.context.reserve_ms,
            backoff_ms=backoff_ms,
            logs=logs,
        )

    def _fall_back(self, run: StepRun, message: str) -> Transition:
        transition = self._requeue(run, message, reroute=True)
        self.router.dispatch_handoffs(transition.handed)
        if transition.code != "ok":
            return transition
        step = run.step_input.step
        request = RouteRequest(
            run.step_id,
            tuple(step.required_capabilities),
            step.agent_type,
            tuple(transition.failed_agents),
        )
        routed = self.router.route(run.session_id, [request])
        target = routed[0].agent_id if routed else None
        self.context.sessions.log(
            LogEntry(
                "warn",
                "orchestrator",
                f"Step falling back from {run.agent_id} to {target or 'the next free agent'}",
                session_id=run.session_id,
                agent_id=run.agent_id,
                task_id=run.step_id,
                error=message,
                data={
                    "fromAgent": run.agent_id,
                    "toAgent": target,
                    "failedAgents": transition.failed_agents,
                },
            ),
            self.context.now_ms(),
        )
        return transition

    def _fail(self, run: StepRun, exc: BaseException, message: str) -> Transition:
        failed = LogEntry(
            "error",
            "task",
            "Step failed",
            session_id=run.session_id,
            agent_id=run.agent_id,
            task_id=run.step_id,
            error=message,
            data={"attempt": run.attempt, "maxAttempts": run.max_attempts},
        )
        return self.outcomes.fail_step(
            run.session_id,
            run.step_id,
            error_type=type(exc).__name__,
            message=str(exc),
            step_message=message,
            entry=failed,
            token=run.token,
            agent_id=run.agent_id,
            attempt=run.attempt,
        )
