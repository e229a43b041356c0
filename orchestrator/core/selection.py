"""Agent selection policies (pure). A policy orders the eligible candidates for a step; routing
then reserves a slot on the first one that still has room (orchestrator/store/lua/route_steps.lua).

Eligible: status active (alive, so not offline), circuit closed, every required capability, the
step's agentType if it names one, and not among the agents the step already failed on.

Policies, chosen by MEOWSTIK_SELECTION_POLICY:
- ``least_loaded`` (the spec's default): least load, then higher priority, then fewest
  capabilities (most specialised), then id.
- ``priority_first``: higher priority, then least load, then fewest capabilities, then id.
- ``round_robin``: agents with a free slot in turn, rotating on every routing decision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from orchestrator.core.models import RegisteredAgent
from orchestrator.core.statuses import AgentStatus

Policy = Callable[[Sequence[RegisteredAgent], int], list[RegisteredAgent]]


def is_eligible(
    agent: RegisteredAgent,
    required: Iterable[str],
    agent_type: str | None = None,
    excluded: Iterable[str] = (),
) -> bool:
    return (
        agent.status == AgentStatus.ACTIVE
        and agent.circuit.state != "open"
        and (agent_type is None or agent.type == agent_type)
        and agent.id not in set(excluded)
        and set(required) <= agent.capability_names
    )


def least_loaded(candidates: Sequence[RegisteredAgent], rotation: int = 0) -> list[RegisteredAgent]:
    """The spec's selectAgent ordering."""
    return sorted(
        candidates, key=lambda a: (a.current_load, -a.priority, len(a.capabilities), a.id)
    )


def priority_first(
    candidates: Sequence[RegisteredAgent], rotation: int = 0
) -> list[RegisteredAgent]:
    return sorted(
        candidates, key=lambda a: (-a.priority, a.current_load, len(a.capabilities), a.id)
    )


def round_robin(candidates: Sequence[RegisteredAgent], rotation: int = 0) -> list[RegisteredAgent]:
    """Rotate through the agents (by id) with free capacity; full ones last."""
    free = sorted((a for a in candidates if a.current_load < a.max_load), key=lambda a: a.id)
    full = sorted((a for a in candidates if a.current_load >= a.max_load), key=lambda a: a.id)
    if free:
        shift = rotation % len(free)
        free = free[shift:] + free[:shift]
    return free + full


POLICIES: dict[str, Policy] = {
    "least_loaded": least_loaded,
    "priority_first": priority_first,
    "round_robin": round_robin,
}


def rank(
    agents: Iterable[RegisteredAgent],
    required: Iterable[str],
    agent_type: str | None = None,
    excluded: Iterable[str] = (),
    *,
    policy: str = "least_loaded",
    rotation: int = 0,
) -> list[RegisteredAgent]:
    """Eligible agents, best first, by the named policy (full agents included, ranked last by
    load: routing re-checks room atomically)."""
    required, excluded = tuple(required), tuple(excluded)
    eligible = [a for a in agents if is_eligible(a, required, agent_type, excluded)]
    return POLICIES[policy](eligible, rotation)
