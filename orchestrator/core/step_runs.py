"""A claimed step run, and a delivery that must not run."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.core.steps import StepInput


@dataclass(frozen=True)
class StepRun:
    """A claimed step: the token proves ownership to the store."""

    token: str
    agent_id: str
    queue: str
    attempt: int
    agent_attempt: int
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
