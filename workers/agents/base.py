"""The agent base class: what a worker process needs to run one step for one agent.

Write an agent by subclassing ``Agent`` (set ``definition``, implement ``run``) or by decorating a
function with ``@agent(...)``. ``run`` returns a ``StepResult`` or any JSON-serialisable value
(taken as the output). Raise ``RetryableStepError`` for failures worth retrying (timeouts,
rate limits) and ``PermanentStepError`` (or any other exception) for the rest.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from orchestrator.core.models import AGENT_ID_PATTERN, AgentDefinition, Capability
from orchestrator.core.steps import StepInput, StepResult


class Agent(ABC):
    definition: AgentDefinition

    @abstractmethod
    def run(self, step_input: StepInput) -> StepResult | Any:
        """Do the step's work and return its result."""


class FunctionAgent(Agent):
    """An agent whose work is one plain function."""

    def __init__(self, definition: AgentDefinition, function: Callable[[StepInput], Any]) -> None:
        self.definition = definition
        self._function = function

    def run(self, step_input: StepInput) -> StepResult | Any:
        return self._function(step_input)


def agent(
    *,
    id: str,  # noqa: A002 - the spec's field name
    name: str,
    type: str,  # noqa: A002
    capabilities: list[str | Capability],
    description: str = "",
    priority: int = 0,
    max_load: int = 1,
    metadata: dict[str, Any] | None = None,
    timeout_s: float | None = None,
) -> Callable[[Callable[[StepInput], Any]], FunctionAgent]:
    """Decorator turning ``def work(step_input) -> output`` into a FunctionAgent. ``timeout_s``
    is the agent's ``timeoutS``: the time limit of its runs unless a step sets its own."""

    def wrap(function: Callable[[StepInput], Any]) -> FunctionAgent:
        definition = AgentDefinition(
            id=id,
            name=name,
            type=type,
            description=description or (function.__doc__ or "").strip(),
            capabilities=[
                c if isinstance(c, Capability) else Capability(name=c) for c in capabilities
            ],
            priority=priority,
            max_load=max_load,
            metadata=metadata or {},
            timeout_s=timeout_s,
        )
        return FunctionAgent(definition, function)

    return wrap


def coerce_result(value: StepResult | Any) -> StepResult:
    return value if isinstance(value, StepResult) else StepResult(output=value)


REPLICA_SEPARATOR = ".r"


def replica_id(agent_id: str, number: int) -> str:
    """``coder-001.r2``: the id replica ``number`` (2 and up) of an agent registers under."""
    return f"{agent_id}{REPLICA_SEPARATOR}{number}"


class ReplicaAgent(Agent):
    """Another instance of an agent, with its own id, queue and maxLoad slots (so routing
    spreads work over the instances by load) and the same work. `meowstik up --autoscale`
    starts and stops these; ``metadata.replicaOf`` names the original."""

    def __init__(self, original: Agent, number: int) -> None:
        if number < 2:
            raise ValueError(f"replica numbers start at 2 (1 is the agent itself), got {number}")
        base = original.definition
        if not re.fullmatch(AGENT_ID_PATTERN, replica_id(base.id, number)):
            raise ValueError(f"agent id {base.id!r} is too long to add a replica suffix to")
        self.original = original
        self.definition = base.model_copy(
            update={
                "id": replica_id(base.id, number),
                "name": f"{base.name} (replica {number})"[:200],
                "metadata": {**base.metadata, "replicaOf": base.id, "replica": number},
            }
        )

    def run(self, step_input: StepInput) -> StepResult | Any:
        return self.original.run(step_input)
