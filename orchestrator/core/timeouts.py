"""Step timeouts: which limit bounds a run, and the soft and hard limits a Python agent's pool
process gets from it. Pure: no I/O.

A run's timeout is the step's ``timeoutS``, else its agent's ``timeoutS``, else
MEOWSTIK_STEP_TIMEOUT_S; none of them set means no limit. A prefork worker gives the run Celery's
soft limit at the timeout (``SoftTimeLimitExceeded`` is raised inside the agent) and its hard
limit ``grace_s`` later (the pool process is killed); the step is then failed with
``StepTimeoutError``, a retryable error (workers/time_limits.py, engine/timeouts.py).
"""

from __future__ import annotations

from dataclasses import dataclass


def effective_timeout_s(
    step_timeout_s: float | None, agent_timeout_s: float | None, default_timeout_s: float | None
) -> float | None:
    """The time limit of one run: the first of the step's, the agent's and the setting's that is
    set (None: the run has no limit)."""
    for timeout_s in (step_timeout_s, agent_timeout_s, default_timeout_s):
        if timeout_s is not None:
            return timeout_s
    return None


@dataclass(frozen=True)
class TimeLimits:
    """Celery's two limits for a run whose timeout is ``soft_s``: at ``soft_s`` the agent gets
    ``SoftTimeLimitExceeded``, at ``hard_s`` its pool process is killed."""

    soft_s: float
    hard_s: float

    @classmethod
    def of(cls, timeout_s: float, grace_s: float) -> TimeLimits:
        return cls(soft_s=timeout_s, hard_s=timeout_s + grace_s)

    def celery(self) -> tuple[float, float]:
        """As Celery's ``Request.time_limits`` holds them: (hard, soft)."""
        return (self.hard_s, self.soft_s)
