"""The log entry of the orchestration logger (the spec's shape) and the REST contract's time
format. Pure: the store writes entries, the engine and agents make them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

LEVELS = ("debug", "info", "warn", "error", "critical")
SOURCES = ("task", "agent", "orchestrator")


def iso_from_ms(ms: int | float | None) -> str | None:
    """ISO 8601 UTC with milliseconds and a Z, as the REST contract shows times."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(float(ms) / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class LogEntry:
    level: str
    source: str
    message: str
    session_id: str | None = None
    agent_id: str | None = None
    task_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def fields(self, now_ms: int) -> dict[str, str]:
        out = {
            "ts": str(now_ms),
            "level": self.level,
            "source": self.source,
            "message": self.message,
        }
        optional = {"sessionId": self.session_id, "agentId": self.agent_id, "taskId": self.task_id}
        out.update({key: value for key, value in optional.items() if value})
        if self.data:
            out["data"] = json.dumps(self.data, separators=(",", ":"), default=str)
        if self.error:
            out["error"] = self.error
        return out
