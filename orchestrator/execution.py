"""The life of one step run, in domain terms: claim, build its input, record its outcome, release
its dependents, retry or fail. The Celery task (workers/tasks.py) only adapts a message to these.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.dispatch import Dispatcher, StepDispatch
from orchestrator.errors import PermanentStepError, RetryableStepError
from orchestrator.models import PlanStep, StepError
from orchestrator.settings import Settings
from orchestrator.steps import StepInput, StepResult
from orchestrator.store.keys import capability_queue, job_id
from orchestrator.store.logbook import LogEntry, iso_from_ms
from orchestrator.store.scripts import Transition
from orchestrator.store.sessions import SessionStore

RETRYABLE_TYPES: tuple[type[BaseException], ...] = (
    RetryableStepError,
    TimeoutError,
    ConnectionError,
)


@dataclass(frozen=True)
class StepRun:
    """A claimed step: the token proves ownership to the store."""

    token: str
    agent_id: str
    attempt: int
    max_attempts: int
    step_input: StepInput

    @property
    def session_id(self) -> str:
        return self.step_input.session_id

    @property
    def step_id(self) -> str:
        return self.step_input.step_id


@dataclass(frozen=True)
class Skip:
    """The delivery must not run the step. ``retry_after_s`` is set when another run holds a live
    lease: the message should come back then, in case that run dies."""

    reason: str
    retry_after_s: float | None = None


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, RETRYABLE_TYPES) and not isinstance(exc, PermanentStepError)


def backoff_s(settings: Settings, attempt: int) -> float:
    """Exponential backoff before attempt ``attempt + 1``."""
    return min(settings.retry_backoff_max_s, settings.retry_backoff_s * math.pow(2, attempt - 1))


class StepLifecycle:
    def __init__(
        self,
        sessions: SessionStore,
        dispatcher: Dispatcher,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sessions = sessions
        self.dispatcher = dispatcher
        self.settings = settings
        self._clock = clock

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    @property
    def lease_ms(self) -> int:
        return int(self.settings.lease_s * 1000)

    def begin(self, session_id: str, step_id: str, agent_id: str) -> StepRun | Skip:
        """Claim the step for ``agent_id`` and assemble its input (one round trip)."""
        token = secrets.token_hex(8)
        started = LogEntry(
            "info",
            "task",
            "Step started",
            session_id=session_id,
            agent_id=agent_id,
            task_id=step_id,
        )
        claim = self.sessions.claim(
            session_id,
            step_id,
            token=token,
            now_ms=self.now_ms(),
            lease_ms=self.lease_ms,
            agent_id=agent_id,
            logs=[started],
        )
        if claim.code == "leased":
            return Skip("leased", retry_after_s=int(claim.detail) / 1000 + 0.1)
        if claim.code != "ok":
            return Skip(f"{claim.code}:{claim.detail}")
        step_input = StepInput(
            session_id=session_id,
            step_id=step_id,
            job_id=job_id(session_id, step_id),
            goal=claim.goal,
            step=PlanStep.model_validate_json(claim.step_json),
            agent_id=agent_id,
            attempt=claim.attempt,
            initial_context=json.loads(claim.initial_context_json),
            shared_state={key: json.loads(value) for key, value in claim.state},
            dependencies={dep: json.loads(output) for dep, output in claim.dependency_outputs},
        )
        return StepRun(token, agent_id, claim.attempt, claim.max_attempts, step_input)

    def renew(self, run: StepRun) -> bool:
        until = self.now_ms() + self.lease_ms
        return self.sessions.renew_lease(
            run.session_id, run.step_id, token=run.token, lease_until_ms=until
        )

    def succeed(self, run: StepRun, result: StepResult) -> Transition:
        """Record the output exactly once, then dispatch every dependent it released."""
        try:
            output_json = json.dumps(result.output, separators=(",", ":"), allow_nan=False)
            updates = {
                key: json.dumps(value, allow_nan=False)
                for key, value in result.state_updates.items()
            }
        except (TypeError, ValueError) as exc:
            error = PermanentStepError(
                f"agent {run.agent_id} returned an output that is not "
                f"JSON-serialisable ({exc}); return plain JSON values"
            )
            return self.fail(run, error)
        done = LogEntry(
            "info",
            "task",
            "Step completed",
            session_id=run.session_id,
            agent_id=run.agent_id,
            task_id=run.step_id,
        )
        transition = self.sessions.complete(
            run.session_id,
            run.step_id,
            token=run.token,
            now_ms=self.now_ms(),
            output_json=output_json,
            agent_id=run.agent_id,
            state_updates=updates,
            logs=[done],
        )
        self._dispatch_released(run.session_id, transition)
        return transition

    def fail(self, run: StepRun, exc: BaseException) -> Transition:
        """Retry with backoff if the error is retryable and attempts remain, else fail the step."""
        message = f"{type(exc).__name__}: {exc}"
        if is_retryable(exc) and run.attempt < run.max_attempts:
            return self._retry(run, message)
        now = self.now_ms()
        error = StepError(
            step_id=run.step_id,
            job_id=run.step_input.job_id,
            agent_id=run.agent_id,
            error_type=type(exc).__name__,
            message=str(exc),
            attempt=run.attempt,
            timestamp=iso_from_ms(now) or "",
        )
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
        return self.sessions.fail(
            run.session_id,
            run.step_id,
            token=run.token,
            now_ms=now,
            message=message,
            error_json=error.model_dump_json(by_alias=True),
            agent_id=run.agent_id,
            logs=[failed],
        )

    def forward(self, run: StepRun, queue: str, reason: str) -> Transition:
        """Give the step to another queue (e.g. ``agent.<id>``) without counting a failure."""
        return self._requeue(run, queue, reason, countdown_s=0.0, level="info")

    def _retry(self, run: StepRun, message: str) -> Transition:
        delay = backoff_s(self.settings, run.attempt)
        return self._requeue(run, _queue_of(run), message, countdown_s=delay, level="warn")

    def _requeue(
        self, run: StepRun, queue: str, message: str, *, countdown_s: float, level: str
    ) -> Transition:
        entry = LogEntry(
            level,
            "task",
            "Step requeued",
            session_id=run.session_id,
            agent_id=run.agent_id,
            task_id=run.step_id,
            error=message,
            data={"attempt": run.attempt, "queue": queue, "delayS": countdown_s},
        )
        transition = self.sessions.requeue(
            run.session_id,
            run.step_id,
            token=run.token,
            now_ms=self.now_ms(),
            message=message,
            queue=queue,
            agent_id=run.agent_id,
            logs=[entry],
        )
        if transition.code == "ok":
            step = run.step_input.step
            self.dispatcher.dispatch(
                [
                    StepDispatch(
                        run.session_id,
                        run.step_id,
                        run.step_input.job_id,
                        queue,
                        tuple(step.required_capabilities),
                        step.agent_type,
                    )
                ],
                countdown_s=countdown_s,
            )
        return transition

    def _dispatch_released(self, session_id: str, transition: Transition) -> None:
        if transition.code != "ok" or not transition.released:
            return
        self.dispatcher.dispatch(
            [
                StepDispatch(
                    session_id,
                    step_id,
                    job_id(session_id, step_id),
                    record["queue"],
                    tuple(record["caps"]),
                    record.get("agentType"),
                )
                for step_id, record in transition.released
            ]
        )


def _queue_of(run: StepRun) -> str:
    return capability_queue(run.step_input.step.required_capabilities[0])
