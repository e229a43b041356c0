"""The one thing the domain needs from the message broker: send released steps to their queues.

``workers.dispatcher.CeleryDispatcher`` implements it with Celery; tests use a recording twin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from orchestrator.core.ids import job_id

RUN_STEP_TASK = "meowstik.run_step"  # the one Celery task every step message names


@dataclass(frozen=True)
class StepDispatch:
    """One step message: ids and routing hints only, never the graph."""

    session_id: str
    step_id: str
    job_id: str
    queue: str
    agent_id: str | None = None

    @classmethod
    def of(cls, session_id: str, step_id: str, queue: str, agent_id: str | None) -> StepDispatch:
        """The message for a step routed to ``queue`` (for ``agent_id``): the one place a
        dispatch is built, so its job id is always the step's deterministic task id."""
        return cls(session_id, step_id, job_id(session_id, step_id), queue, agent_id)


class Dispatcher(Protocol):
    def dispatch(self, dispatches: Sequence[StepDispatch], countdown_s: float = 0.0) -> None:
        """Publish every dispatch; raise DispatchError if the broker cannot take them."""

    def revoke(self, job_ids: Sequence[str]) -> None:
        """Stop running steps by job id (their results are refused by the record anyway)."""
