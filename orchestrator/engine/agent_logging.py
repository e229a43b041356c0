"""The logger agents get as ``step_input.logger``: entries in the session's durable log with
source "agent", bound to the session, the step and the agent."""

from __future__ import annotations

from typing import Any

from orchestrator.core.logentry import LogEntry
from orchestrator.engine.context import EngineContext


class BoundLogger:
    """``step_input.logger``: agent log entries bound to one session, step and agent."""

    def __init__(self, context: EngineContext, session_id: str, step_id: str, agent_id: str):
        self._context = context
        self._ids = {"session_id": session_id, "task_id": step_id, "agent_id": agent_id}

    def _write(self, level: str, message: str, data: dict[str, Any]) -> None:
        self._context.log(LogEntry(level, "agent", message, data=data, **self._ids))

    def debug(self, message: str, **data: Any) -> None:
        self._write("debug", message, data)

    def info(self, message: str, **data: Any) -> None:
        self._write("info", message, data)

    def warn(self, message: str, **data: Any) -> None:
        self._write("warn", message, data)

    def error(self, message: str, **data: Any) -> None:
        self._write("error", message, data)
