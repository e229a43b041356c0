"""What an agent receives and returns for one step, and how its input is assembled.

Context propagation (DESIGN rule 4): a step's input holds the session's initial context, the shared
state, and the outputs of the steps it depends on, keyed by step id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.models import PlanStep


@dataclass(frozen=True)
class StepInput:
    session_id: str
    step_id: str
    job_id: str
    goal: str
    step: PlanStep
    agent_id: str
    attempt: int
    initial_context: dict[str, Any] = field(default_factory=dict)
    shared_state: dict[str, Any] = field(default_factory=dict)
    dependencies: dict[str, Any] = field(default_factory=dict)

    def as_context(self) -> dict[str, Any]:
        """The JSON document an external agent (HTTP, LLM) is given."""
        return {
            "sessionId": self.session_id,
            "stepId": self.step_id,
            "jobId": self.job_id,
            "goal": self.goal,
            "step": self.step.model_dump(mode="json", by_alias=True, exclude={"subtasks"}),
            "agentId": self.agent_id,
            "attempt": self.attempt,
            "initialContext": self.initial_context,
            "sharedState": self.shared_state,
            "dependencies": self.dependencies,
        }


@dataclass(frozen=True)
class StepResult:
    """An agent's answer: ``output`` is stored as the step's result (JSON-serialisable);
    ``state_updates`` are merged into the session's shared state when the step completes."""

    output: Any
    state_updates: dict[str, Any] = field(default_factory=dict)
