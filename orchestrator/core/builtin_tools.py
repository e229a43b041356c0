"""The built-in tools that need nothing but the step (pure: they reach Redis only through
``step_input.state`` and ``step_input.workspace``). The HTTP ones (``http_get``,
``github_code_search``) live with the workers (workers/tools/web.py): they use requests.

Idempotent (safe to run again with the same arguments when a durable loop replays a step):
``state_get``, ``state_set`` (the entry ends up holding the same value; its version grows once
more), ``state_delete`` (the entry ends up absent), ``workspace_read``/``file_get``,
``workspace_write`` (a whole-file write), ``workspace_list``. Not idempotent: ``ask_operator``
(it asks a person).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from orchestrator.core.errors import ToolError
from orchestrator.core.steps import InputRequired
from orchestrator.core.tools import Tool, ToolContext, tool

StateScope = Literal["shared", "temporary", "private"]
_MISSING = object()


@tool(idempotent=True)
def state_get(context: ToolContext, key: str) -> dict[str, Any]:
    """Read one entry of the session's state, as this agent sees it: its private entry, else a
    live temporary one, else the shared one. ``found`` is false when no scope holds the key.

    Args:
        key: the state key.
    """
    value = context.state.get(key, _MISSING)
    if value is _MISSING:
        return {"key": key, "found": False, "value": None}
    return {"key": key, "found": True, "value": value}


@tool(idempotent=True)
def state_set(
    context: ToolContext,
    key: str,
    value: Any,
    scope: StateScope = "shared",
    ttl_s: Annotated[float | None, Field(gt=0)] = None,
) -> dict[str, Any]:
    """Write one entry of the session's state at once (later steps and other agents see it).
    Returns the entry's new version.

    Args:
        key: the state key.
        value: any JSON value.
        scope: shared (every agent), temporary (expires after ttl_s) or private (this agent).
        ttl_s: seconds a temporary entry lives; only with scope temporary.
    """
    if scope == "private":
        if ttl_s is not None:
            raise ToolError("ttl_s applies to temporary entries only; omit it for private ones")
        return {"key": key, "version": context.state.private.set(key, value)}
    return {"key": key, "version": context.state.set(key, value, type=scope, ttl_s=ttl_s)}


@tool(idempotent=True)
def state_delete(context: ToolContext, key: str, scope: StateScope = "shared") -> dict[str, Any]:
    """Remove one entry of the session's state from one scope (the others keep theirs).
    ``deleted`` is false when it was not there.

    Args:
        key: the state key.
        scope: shared, temporary or private.
    """
    if scope == "private":
        return {"key": key, "deleted": context.state.private.delete(key)}
    return {"key": key, "deleted": context.state.delete(key, type=scope)}


@tool(idempotent=True)
def workspace_read(context: ToolContext, path: str) -> dict[str, Any]:
    """Read a text file of the session's workspace (files the session's steps wrote).

    Args:
        path: the file's relative path, e.g. notes/summary.md.
    """
    content = context.workspace.read(path)
    if content is None:
        files = sorted(context.workspace.list())
        raise ToolError(
            f"no workspace file {path!r}; the workspace holds: {', '.join(files) or 'nothing'}",
            details={"path": path, "files": files},
        )
    return {"path": path, "content": content}


@tool(idempotent=True)
def workspace_write(context: ToolContext, path: str, content: str) -> dict[str, Any]:
    """Write (create or replace) a text file of the session's workspace; later steps can read
    it. Returns its size in bytes.

    Args:
        path: a relative path of letters, digits, '.', '_' and '-' segments joined by '/'.
        content: the whole text of the file.
    """
    return {"path": path, "bytes": context.workspace.write(path, content)}


@tool(idempotent=True)
def workspace_list(context: ToolContext) -> dict[str, Any]:
    """List the files of the session's workspace with their sizes in bytes."""
    files = context.workspace.list()
    return {"files": [{"path": path, "bytes": files[path]} for path in sorted(files)]}


@tool
def ask_operator(
    context: ToolContext, question: str, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Ask a person operating the session a question and wait for the answer; the step pauses
    without holding a worker and continues with the answer.

    Args:
        question: what to ask, shown in the API, CLI and dashboard.
        schema: optional JSON Schema the answer must satisfy.
    """
    if context.step_input.input_provided:
        return {"question": question, "answer": context.step_input.operator_input}
    raise InputRequired(question, schema=schema)


file_get = workspace_read.alias(
    "file_get", "Read a text file of the session's workspace (the spec's name for workspace_read)."
)

BUILTIN_TOOLS: tuple[Tool, ...] = (
    state_get,
    state_set,
    state_delete,
    workspace_read,
    file_get,
    workspace_write,
    workspace_list,
    ask_operator,
)
"""Every built-in tool that the core defines (the HTTP ones are added by the workers' loader)."""
