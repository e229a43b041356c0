"""The logger agents get as ``step_input.logger``: entries in the session's durable log with
source "agent", bound to the session, the step and the agent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.core.logentry import LogEntry

if TYPE_CHECKING:
    from orchestrator.engine.lifecycle import StepLifecycle


class BoundLogger:
    """``step_input.logger``: agent log entries bound to one session, step and agent."""

    def __init__(self, lifecycle: StepLifecycle, session_id: str, step_id: str, agent_id: str):
        self._lifecycle = lifecycle
        self._ids = {"session_id": session_id, "task_id": step_id, "agent_id": agent_id}

    def _write(self, level: str, message: str, data: dict[str, Any]) -> None:
        self._lifecycle.sessions.log(
            LogEntry(level, "agent", message, data=data, **self._ids), self._lifecycle.now_ms()
        )

    def debug(self, message: str, **data: Any) -> None:
        self._write("debug", message, data)

    def info(self, message: str, **data: Any) -> None:
        self._write("info", message, data)

    def warn(self, message: str, **data: Any) -> None:
        self._write("warn", message, data)

    def error(self, message: str, **data: Any) -> None:
        self._write("error", message, data)
