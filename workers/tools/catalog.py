"""Finds the tools of this installation: the built-in ones (orchestrator/core/builtin_tools.py
and the HTTP ones of web.py), ``@tool`` objects in modules named by MEOWSTIK_TOOL_MODULES, and
those published under the ``meowstik.tools`` entry-point group (a Tool, or a list or tuple of
them). A name defined twice stops the start, naming both origins."""

from __future__ import annotations

from orchestrator.core.builtin_tools import BUILTIN_TOOLS
from orchestrator.core.errors import ToolCatalogError
from orchestrator.core.tools import Tool, ToolRegistry
from orchestrator.settings import Settings
from workers.plugins import discover
from workers.tools.web import web_tools

ENTRY_POINT_GROUP = "meowstik.tools"
BUILTIN_ORIGIN = "the built-in tools"


def load_tools(settings: Settings) -> ToolRegistry:
    """Every tool this installation knows. Raises ToolCatalogError for a module that cannot be
    imported or a name defined twice."""
    registry = ToolRegistry()
    for item in (*BUILTIN_TOOLS, *web_tools(settings)):
        registry.register(item, BUILTIN_ORIGIN)
    found = discover(
        Tool,
        modules=settings.tool_module_names,
        setting="MEOWSTIK_TOOL_MODULES",
        group=ENTRY_POINT_GROUP,
        error=ToolCatalogError,
    )
    for item, origin in found:
        registry.register(item, origin)
    return registry
