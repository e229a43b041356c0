"""Errors of tools: a tool module that cannot be loaded, a tool's own failure (which the model
reads as a tool result, not a step failure), the workspace's rules, and an agent registered over
REST naming a tool nobody registered."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from orchestrator.core.errors.base import ConfigurationError, OrchestratorError
from orchestrator.core.errors.sessions import RegistrationError


class ToolCatalogError(ConfigurationError):
    """A tool module or entry point that fails to load, a tool defined twice under one name, or
    a function that cannot be a tool (no context parameter, a hint pydantic cannot use)."""

    code = "tool_catalog_error"


class ToolError(OrchestratorError):
    """Raised by a tool to answer the model with an error it can read and act on (a host not
    allowed, a missing token, a file that is not there). ``invoke`` turns it into the result
    ``{"error": {"type", "message", "details"}}``; the step goes on."""

    code = "tool_error"
    http_status = 422


class WorkspaceError(ToolError):
    """A workspace path or file the rules refuse: a bad path, a file over
    MEOWSTIK_WORKSPACE_MAX_FILE_BYTES, one file more than MEOWSTIK_WORKSPACE_MAX_FILES."""

    code = "workspace_error"


class UnknownToolError(RegistrationError):
    """An agent registered over REST whose capability names a tool that is not registered."""

    code = "unknown_tool"

    def __init__(self, capability: str, tool: str, registered: Iterable[str]) -> None:
        names = sorted(registered)
        self.capability, self.tool, self.registered = capability, tool, names
        details: dict[str, Any] = {
            "field": "capabilities",
            "capability": capability,
            "tool": tool,
            "registeredTools": names,
        }
        super().__init__(
            f"capability {capability!r} names tool {tool!r}, which is not registered; "
            f"registered tools: {', '.join(names) or '(none)'}. Name a registered tool, or "
            "publish it with @tool in a module on MEOWSTIK_TOOL_MODULES (or the meowstik.tools "
            "entry-point group) and restart the API.",
        )
        self.details = details
