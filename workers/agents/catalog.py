"""Finds the agents a worker can host: the built-in fleet, agents in modules named by
MEOWSTIK_AGENT_MODULES, and agents published under the ``meowstik.agents`` entry-point group."""

from __future__ import annotations

from orchestrator.core.errors import AgentCatalogError
from orchestrator.settings import Settings
from workers.agents.base import Agent
from workers.agents.builtin import BUILTIN_AGENTS
from workers.plugins import discover

ENTRY_POINT_GROUP = "meowstik.agents"


def _add(catalog: dict[str, Agent], agents: list[Agent], origin: str) -> None:
    for agent in agents:
        agent_id = agent.definition.id
        if agent_id in catalog and catalog[agent_id] is not agent:
            raise AgentCatalogError(
                f"agent id {agent_id!r} from {origin} is already defined; agent ids must be unique"
            )
        catalog[agent_id] = agent


def load_agents(settings: Settings) -> dict[str, Agent]:
    """Every agent this installation knows, by id."""
    catalog: dict[str, Agent] = {}
    _add(catalog, list(BUILTIN_AGENTS), "the built-in fleet")
    found = discover(
        Agent,  # type: ignore[type-abstract]  # an isinstance check, never instantiated
        modules=settings.agent_module_names,
        setting="MEOWSTIK_AGENT_MODULES",
        group=ENTRY_POINT_GROUP,
        error=AgentCatalogError,
    )
    for agent, origin in found:
        _add(catalog, [agent], origin)
    return catalog
