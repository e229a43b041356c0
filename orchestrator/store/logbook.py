"""The orchestration logger's storage: capped Redis Streams, one per session plus a global one.

Entries have the spec's shape (id, timestamp, level, source, message, sessionId, agentId, taskId,
data, error). Writers append through a pipeline they already send, so a log line costs no extra
round trip.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from orchestrator.store.keys import Keys
from orchestrator.store.scripts import text

SESSION_LOG_MAX_LEN = 10_000
GLOBAL_LOG_MAX_LEN = 100_000
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


class Logbook:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def append(self, pipe: Any, entry: LogEntry, now_ms: int) -> None:
        """Queue the entry on ``pipe`` (a redis-py pipeline): session stream and global stream."""
        fields = entry.fields(now_ms)
        if entry.session_id:
            pipe.xadd(
                self._keys.session_logs(entry.session_id),
                fields,
                maxlen=SESSION_LOG_MAX_LEN,
                approximate=True,
            )
        pipe.xadd(self._keys.global_logs, fields, maxlen=GLOBAL_LOG_MAX_LEN, approximate=True)

    def write(self, entry: LogEntry, now_ms: int) -> None:
        pipe = self._client.pipeline(transaction=False)
        self.append(pipe, entry, now_ms)
        pipe.execute()

    def session_entries(self, session_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The session's entries, oldest first, in the spec's JSON shape."""
        raw = self._client.xrange(self._keys.session_logs(session_id), count=limit)
        return [to_json(entry_id, fields) for entry_id, fields in raw]


def to_json(entry_id: Any, fields: dict[Any, Any]) -> dict[str, Any]:
    decoded = {text(key): text(value) for key, value in fields.items()}
    entry: dict[str, Any] = {
        "id": f"log-{text(entry_id)}",
        "timestamp": iso_from_ms(int(decoded["ts"])),
        "level": decoded["level"],
        "source": decoded["source"],
        "message": decoded["message"],
    }
    for key in ("sessionId", "agentId", "taskId", "error"):
        if key in decoded:
            entry[key] = decoded[key]
    if "data" in decoded:
        entry["data"] = json.loads(decoded["data"])
    return entry
