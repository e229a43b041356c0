"""Finds the agents a worker can host: the built-in fleet, agents in modules named by
MEOWSTIK_AGENT_MODULES, and agents published under the ``meowstik.agents`` entry-point group."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from orchestrator.core.errors import AgentCatalogError
from orchestrator.settings import Settings
from workers.agents.base import Agent
from workers.agents.builtin import BUILTIN_AGENTS

ENTRY_POINT_GROUP = "meowstik.agents"


def _agents_in(value: Any) -> list[Agent]:
    if isinstance(value, Agent):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, Agent)]
    return []


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
    for module_name in settings.agent_module_names:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise AgentCatalogError(
                f"cannot import agent module {module_name!r} (MEOWSTIK_AGENT_MODULES): {exc}"
            ) from exc
        for value in vars(module).values():
            _add(catalog, _agents_in(value), f"module {module_name}")
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        _add(catalog, _agents_in(entry_point.load()), f"entry point {entry_point.name}")
    return catalog
