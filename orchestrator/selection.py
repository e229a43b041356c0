"""Agent selection policies (pure). The spec's default: among eligible agents (active, every
required capability, the step's agentType if named, below maxLoad) prefer the least loaded, then
the highest priority, then the most specialised (fewest capabilities), then the id for stability.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from orchestrator.models import AgentDefinition
from orchestrator.statuses import AgentStatus

SelectionPolicy = Callable[[Sequence[AgentDefinition]], AgentDefinition | None]


def is_eligible(
    agent: AgentDefinition,
    required: Iterable[str],
    agent_type: str | None,
    *,
    check_load: bool = True,
) -> bool:
    if agent.status != AgentStatus.ACTIVE:
        return False
    if agent_type is not None and agent.type != agent_type:
        return False
    if check_load and agent.current_load >= agent.max_load:
        return False
    return set(required) <= agent.capability_names


def least_loaded(candidates: Sequence[AgentDefinition]) -> AgentDefinition | None:
    """The spec's selectAgent ordering."""
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda a: (a.current_load, -a.priority, len(a.capabilities), a.id),
    )


POLICIES: dict[str, SelectionPolicy] = {"least_loaded": least_loaded}


def select_agent(
    agents: Iterable[AgentDefinition],
    required: Iterable[str],
    agent_type: str | None = None,
    *,
    policy: SelectionPolicy = least_loaded,
    check_load: bool = True,
) -> AgentDefinition | None:
    """The best eligible agent for a step, or None."""
    required = tuple(required)
    candidates = [a for a in agents if is_eligible(a, required, agent_type, check_load=check_load)]
    return policy(candidates)
