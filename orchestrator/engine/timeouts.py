"""Step timeouts in the engine: the limit a run gets, and the one way a run past it is recorded.

The limit is the step's ``timeoutS``, else its agent's, else MEOWSTIK_STEP_TIMEOUT_S
(core/timeouts.py). A run past it is recorded by ``time_out``: a "Step timed out" log entry,
then the failure path with ``StepTimeoutError``, which is retryable (retried after the backoff,
then a fallback agent, then the step fails), so the run's slot and lease are released as for any
failure. Three callers notice a timeout (workers/time_limits.py, workers/runtime.py):

- the run's own pool process, when the agent let Celery's ``SoftTimeLimitExceeded`` out;
- its worker's main process, when Celery's hard limit killed the pool process (``time_out_killed``:
  the run's token comes from the message, its record from Redis);
- the run's lease keeper, in a pool that has no time limits (threads, solo): the run is
  abandoned, and its late outcome is refused by its token.
"""

from __future__ import annotations

from orchestrator.core.errors import StepTimeoutError
from orchestrator.core.ids import job_id
from orchestrator.core.logentry import LogEntry
from orchestrator.core.models import PlanStep
from orchestrator.core.step_runs import StepRun
from orchestrator.core.steps import StepInput
from orchestrator.core.timeouts import effective_timeout_s
from orchestrator.engine.context import EngineContext
from orchestrator.engine.failures import StepFailures
from orchestrator.store.scripts import Transition

SOFT_LIMIT = "soft_limit"  # the agent got SoftTimeLimitExceeded and gave up
HARD_LIMIT = "hard_limit"  # Celery killed the pool process running it
ABANDONED = "abandoned"  # a pool without limits: the run goes on, its outcome is refused


class StepTimeouts:
    """The limit of a run, and recording a run that went past it. StepLifecycle holds one."""

    def __init__(self, context: EngineContext, failures: StepFailures) -> None:
        self.context = context
        self.failures = failures

    def limit_s(self, session_id: str, step_id: str, agent_id: str) -> float | None:
        """The time limit of the step's next run on ``agent_id`` (one round trip); None: none."""
        step_s, agent_s = self.context.sessions.runs.timeouts(session_id, step_id, agent_id)
        return effective_timeout_s(step_s, agent_s, self.context.settings.step_timeout_s)

    def time_out(self, run: StepRun, timeout_s: float, *, stopped_by: str) -> Transition:
        """Record that ``run`` went past ``timeout_s`` and was stopped (``stopped_by``: SOFT_LIMIT,
        HARD_LIMIT or ABANDONED): log it, then fail the run with StepTimeoutError."""
        error = StepTimeoutError(timeout_s)
        self.context.log(
            LogEntry(
                "warn",
                "task",
                "Step timed out",
                session_id=run.session_id,
                agent_id=run.agent_id,
                task_id=run.step_id,
                error=f"{type(error).__name__}: {error}",
                data={"timeoutS": timeout_s, "stoppedBy": stopped_by, "attempt": run.attempt},
            )
        )
        return self.failures.fail(run, error)

    def time_out_killed(
        self, session_id: str, step_id: str, agent_id: str, *, token: str, timeout_s: float
    ) -> Transition:
        """The run that claimed the step with ``token`` was killed at its hard limit: record its
        timeout. Changes nothing (code ``stale``) when that run no longer owns the step: it
        finished or timed out by itself first, never claimed it, or another run took it over."""
        running = self.context.sessions.runs.running(session_id, step_id)
        if running is None or running.status != "running" or running.token != token:
            return Transition(code="stale", detail=running.status if running else "missing")
        step_input = StepInput(
            session_id=session_id,
            step_id=step_id,
            job_id=job_id(session_id, step_id),
            goal=running.goal,
            step=PlanStep.model_validate_json(running.step_json),
            agent_id=agent_id,
            attempt=running.attempts,
        )
        run = StepRun(
            token,
            agent_id,
            running.queue,
            running.attempts,
            running.agent_attempts,
            running.max_attempts,
            step_input,
        )
        return self.time_out(run, timeout_s, stopped_by=HARD_LIMIT)
