"""Finds the tools of this installation: the built-in ones (orchestrator/core/builtin_tools.py
and the HTTP ones of web.py), ``@tool`` objects in modules named by MEOWSTIK_TOOL_MODULES, and
those published under the ``meowstik.tools`` entry-point group (a Tool, or a list or tuple of
them). A name defined twice stops the start, naming both origins."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from orchestrator.core.builtin_tools import BUILTIN_TOOLS
from orchestrator.core.errors import ToolCatalogError
from orchestrator.core.tools import Tool, ToolRegistry
from orchestrator.settings import Settings
from workers.tools.web import web_tools

ENTRY_POINT_GROUP = "meowstik.tools"
BUILTIN_ORIGIN = "the built-in tools"


def _tools_in(value: Any) -> list[Tool]:
    if isinstance(value, Tool):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, Tool)]
    return []


def load_tools(settings: Settings) -> ToolRegistry:
    """Every tool this installation knows. Raises ToolCatalogError for a module that cannot be
    imported or a name defined twice."""
    registry = ToolRegistry()
    for item in (*BUILTIN_TOOLS, *web_tools(settings)):
        registry.register(item, BUILTIN_ORIGIN)
    for module_name in settings.tool_module_names:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ToolCatalogError(
                f"cannot import tool module {module_name!r} (MEOWSTIK_TOOL_MODULES): {exc}"
            ) from exc
        for value in vars(module).values():
            for item in _tools_in(value):
                registry.register(item, f"module {module_name}")
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        for item in _tools_in(entry_point.load()):
            registry.register(item, f"entry point {entry_point.name}")
    return registry
