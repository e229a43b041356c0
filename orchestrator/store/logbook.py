"""The orchestration logger's storage: capped Redis Streams, one per session plus a global one.

Entries have the spec's shape (id, timestamp, level, source, message, sessionId, agentId, taskId,
data, error). Writers append through a pipeline they already send, or hand the entries to the
script they call (``payload``), so a log line costs no extra round trip.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from orchestrator.core.logentry import LEVELS, LogEntry, iso_from_ms
from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.scripts import text

SESSION_LOG_MAX_LEN = 10_000
GLOBAL_LOG_MAX_LEN = 100_000


@translates_redis_errors
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

    @staticmethod
    def payload(entries: Sequence[LogEntry], now_ms: int) -> str:
        """``entries`` as the last argument of a script that writes its own (lua/_logs.lua):
        the streams' lengths and each entry's session id and flat field list."""
        flat = [
            [
                entry.session_id or "",
                [item for pair in entry.fields(now_ms).items() for item in pair],
            ]
            for entry in entries
        ]
        return json.dumps(
            {"sessionMax": SESSION_LOG_MAX_LEN, "globalMax": GLOBAL_LOG_MAX_LEN, "entries": flat},
            separators=(",", ":"),
        )

    def write(self, entry: LogEntry, now_ms: int) -> None:
        """Append one entry to both streams in one MULTI: both or neither (a Redis refusing
        writes refuses the whole transaction)."""
        pipe = self._client.pipeline(transaction=True)
        self.append(pipe, entry, now_ms)
        pipe.execute()

    def trim_global(self, older_than_ms: int) -> None:
        """Drop entries of the cross-session log older than ``older_than_ms`` (their sessions'
        own logs expire with retention; this copy would otherwise stay until MAXLEN)."""
        self._client.xtrim(self._keys.global_logs, minid=older_than_ms, approximate=False)

    def query(
        self, session_id: str | None, flt: LogFilter
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Entries oldest first that pass the filter, a page at a time. Returns the page and the
        cursor of the next page (None at the end)."""
        key = self._keys.session_logs(session_id) if session_id else self._keys.global_logs
        start = flt.start_id()
        page: list[dict[str, Any]] = []
        while True:
            raw: Any = self._client.xrange(key, start, "+", count=max(flt.limit * 2, 100))
            if not raw:
                return page, None
            for entry_id, fields in raw:
                entry = to_json(entry_id, fields)
                entry["_ts"] = int(text(fields.get(b"ts", fields.get("ts", b"0"))))
                if flt.matches(entry):
                    del entry["_ts"]
                    page.append(entry)
                    if len(page) == flt.limit:
                        more = self._client.xrange(key, f"({text(entry_id)}", "+", count=1)
                        return page, (entry["id"] if more else None)
            start = f"({text(raw[-1][0])}"

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The newest entries across sessions, oldest first."""
        raw: Any = self._client.xrevrange(self._keys.global_logs, count=limit)
        return [to_json(entry_id, fields) for entry_id, fields in reversed(raw)]

    def read_after(
        self, session_id: str, last_id: str, *, block_ms: int, count: int = 100
    ) -> list[dict[str, Any]]:
        """Entries after ``last_id`` (a stream id), waiting up to ``block_ms`` for new ones."""
        key = self._keys.session_logs(session_id)
        # BLOCK 0 would wait forever: a zero wait is a plain, non-blocking read
        reply: Any = self._client.xread({key: last_id}, count=count, block=block_ms or None)
        return [
            to_json(entry_id, fields) for _key, entries in reply for entry_id, fields in entries
        ]

    def session_entries(self, session_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The session's entries, oldest first, in the spec's JSON shape."""
        raw: Any = self._client.xrange(self._keys.session_logs(session_id), count=limit)
        return [to_json(entry_id, fields) for entry_id, fields in raw]


LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}

# Live-event types (SSE) by log message; a message not listed is a plain "log" event.
EVENT_TYPES = (
    ("Session created", "session.created"),
    ("Session finished", "session.finished"),
    ("Session cancelled", "session.cancelled"),
    ("Context updated", "session.context_updated"),
    ("State updated", "state.updated"),
    ("Step started", "step.started"),
    ("Step completed", "step.completed"),
    ("Step failed", "step.failed"),
    ("Step retrying", "step.retrying"),
    ("Step falling back", "step.fallback"),
    ("Step waiting for input", "step.waiting_for_input"),
    ("Step input received", "step.input_received"),
    ("Step input timed out", "step.input_timeout"),
    ("Step waiting for capacity", "step.waiting_for_capacity"),
    ("Step waiting for an agent", "step.waiting_for_agent"),
    ("Step schedule timed out", "step.schedule_timeout"),
    ("Step recovered", "step.recovered"),
    ("Step dead-lettered", "step.dead_lettered"),
    ("Step forwarded", "step.forwarded"),
    ("Step decomposed", "step.decomposed"),
    ("Subtasks finished", "step.subtasks_finished"),
    ("Plan made", "plan.made"),
    ("LLM plan rejected", "plan.rejected"),
    ("LLM planner failed", "plan.fallback"),
    ("Delivery not run", "step.delivery_skipped"),
    ("Circuit opened", "agent.circuit_opened"),
    ("Step routed", "step.routed"),
    ("Budget reached", "budget.reached"),
    ("Budget raised", "budget.raised"),
    ("Budget changed", "budget.changed"),
    ("Budget exceeded", "budget.exceeded"),
)


def event_type(message: str) -> str:
    for prefix, kind in EVENT_TYPES:
        if message.startswith(prefix):
            return kind
    return "log"


@dataclass(frozen=True)
class LogFilter:
    """Filters of GET .../logs. ``cursor`` is the id of the last entry of the previous page."""

    min_level: str | None = None
    source: str | None = None
    agent_id: str | None = None
    task_id: str | None = None
    since_ms: int | None = None
    limit: int = 100
    cursor: str | None = None

    def matches(self, entry: dict[str, Any]) -> bool:
        return (
            (self.min_level is None or LEVEL_RANK[entry["level"]] >= LEVEL_RANK[self.min_level])
            and (self.source is None or entry["source"] == self.source)
            and (self.agent_id is None or entry.get("agentId") == self.agent_id)
            and (self.task_id is None or entry.get("taskId") == self.task_id)
            and (self.since_ms is None or entry["_ts"] >= self.since_ms)
        )

    def start_id(self) -> str:
        """The XRANGE start: after the cursor, or the beginning. (``since`` compares the
        entries' own timestamps: stream ids carry the Redis server's clock.)"""
        if self.cursor:
            return f"({self.cursor.removeprefix('log-')}"
        return "-"


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
