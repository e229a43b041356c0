"""Running steps' model text as it arrives: one capped Redis Stream per session (``Keys.deltas``),
read by the API as the SSE ``step.delta`` events.

Worker side: the model tool loop gets a writer from ``DeltaStream.writer(session_id, step_id,
agent_id)`` and hands it every text fragment (``DeltaWriter.on_delta``). The writer coalesces
them: one XADD when at least ``flush_interval_s`` has passed since its last one, or when it holds
``flush_chars`` characters; ``close()`` adds what is left with ``done``. A fragment is only
flushed when another arrives or at ``close()`` (no timer thread). Each entry holds stepId,
agentId, text (only the new text: readers append), seq (1, 2, ... per writer) and done ("1" on
the last). Entries go through ``append_delta.lua``, which writes only while the session runs, so
nothing recreates the stream after retention expired it; the stream is capped at about
``DELTA_STREAM_MAX_LEN`` entries.

Streaming is best effort: a Redis error is logged once and ends that writer's streaming, never
the step. The step's recorded reply, not the deltas, is the truth.

API side: ``read_events`` reads the session's log and its deltas in one blocking XREAD.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import redis

from orchestrator.core.errors import StoreUnavailableError
from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.logbook import to_json as log_json
from orchestrator.store.scripts import Scripts, text

log = logging.getLogger(__name__)

DELTA_STREAM_MAX_LEN = 2000  # approximate (XADD MAXLEN ~): Redis trims whole stream nodes
FLUSH_INTERVAL_S = 0.25
FLUSH_CHARS = 512

Append = Callable[[dict[str, str]], "str | None"]
"""Adds one entry's fields; returns its id, or None when the session no longer runs."""


@translates_redis_errors
class DeltaStream:
    """The delta streams of every session over one client."""

    def __init__(
        self, client: redis.Redis, keys: Keys, *, max_len: int = DELTA_STREAM_MAX_LEN
    ) -> None:
        self._client, self._keys, self.max_len = client, keys, max_len
        self._script = Scripts(client)["append_delta"]

    # --- worker side ----------------------------------------------------------------------------
    def writer(
        self,
        session_id: str,
        step_id: str,
        agent_id: str,
        *,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        flush_chars: int = FLUSH_CHARS,
        clock: Callable[[], float] = time.monotonic,
    ) -> DeltaWriter:
        """A writer for one run of a step: what the worker's model loop streams its text to."""
        return DeltaWriter(
            lambda fields: self.append(session_id, fields),
            session_id,
            step_id,
            agent_id,
            flush_interval_s=flush_interval_s,
            flush_chars=flush_chars,
            clock=clock,
        )

    def append(self, session_id: str, fields: dict[str, str]) -> str | None:
        """Add one entry (XADD MAXLEN ~ ``max_len``); its stream id, or None when the session
        no longer runs (nothing written)."""
        flat = [item for pair in fields.items() for item in pair]
        reply = self._script(
            keys=[self._keys.session(session_id), self._keys.deltas(session_id)],
            args=[self.max_len, *flat],
        )
        return text(reply[1]) if text(reply[0]) == "ok" else None

    # --- API side -------------------------------------------------------------------------------
    def read_after(
        self, session_id: str, last_id: str, block_ms: int, count: int = 100
    ) -> list[dict[str, Any]]:
        """Entries after ``last_id`` (a stream id), waiting up to ``block_ms`` for new ones."""
        key = self._keys.deltas(session_id)
        # BLOCK 0 would wait forever: a zero wait is a plain, non-blocking read
        reply: Any = self._client.xread({key: last_id}, count=count, block=block_ms or None)
        return [
            delta_json(entry_id, fields) for _key, entries in reply for entry_id, fields in entries
        ]

    def read_events(
        self, session_id: str, log_after: str, delta_after: str, *, block_ms: int, count: int = 100
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The session's log entries after ``log_after`` (``Logbook`` JSON, ids ``log-<id>``) and
        its delta entries after ``delta_after``, up to ``count`` of each, in one XREAD that waits
        up to ``block_ms`` for either stream to have something."""
        logs_key, deltas_key = self._keys.session_logs(session_id), self._keys.deltas(session_id)
        reply: Any = self._client.xread(
            {logs_key: log_after, deltas_key: delta_after}, count=count, block=block_ms or None
        )
        logs: list[dict[str, Any]] = []
        deltas: list[dict[str, Any]] = []
        for key, entries in reply:
            if text(key) == logs_key:
                logs = [log_json(entry_id, fields) for entry_id, fields in entries]
            else:
                deltas = [delta_json(entry_id, fields) for entry_id, fields in entries]
        return logs, deltas


class DeltaWriter:
    """Coalesces one step run's text fragments into delta entries. One model loop calls it (it
    is not thread-safe); it never raises into that loop on a Redis error."""

    def __init__(
        self,
        append: Append,
        session_id: str,
        step_id: str,
        agent_id: str,
        *,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        flush_chars: int = FLUSH_CHARS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._append = append
        self.session_id, self.step_id, self.agent_id = session_id, step_id, agent_id
        self.flush_interval_s, self.flush_chars = flush_interval_s, flush_chars
        self._clock = clock
        self._buffer: list[str] = []
        self._buffered = 0
        self._last_flush = clock()
        self._seq = 0
        self._streaming = True
        self._closed = False

    @property
    def seq(self) -> int:
        """How many entries this writer has written."""
        return self._seq

    @property
    def streaming(self) -> bool:
        """False once closed, or once a failed write (or the session's end) stopped it."""
        return self._streaming

    def on_delta(self, text: str) -> None:
        """Take one fragment of the model's text; write when the buffer is due."""
        if not text or not self._streaming:
            return
        self._buffer.append(text)
        self._buffered += len(text)
        due = self._clock() - self._last_flush >= self.flush_interval_s
        if due or self._buffered >= self.flush_chars:
            self._write(done=False)

    def flush(self) -> None:
        """Write what the buffer holds now, if anything."""
        if self._buffered and self._streaming:
            self._write(done=False)

    def close(self) -> None:
        """Write the rest with ``done`` (the end marker). Later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        if self._streaming:
            self._write(done=True)
        self._streaming = False

    def __enter__(self) -> DeltaWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _write(self, *, done: bool) -> None:
        chunk = "".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        self._last_flush = self._clock()
        fields = {
            "stepId": self.step_id,
            "agentId": self.agent_id,
            "text": chunk,
            "seq": str(self._seq + 1),
            "done": "1" if done else "0",
        }
        try:
            written = self._append(fields)
        except (redis.RedisError, StoreUnavailableError, OSError) as exc:
            log.warning(
                "streaming the text of step %s of session %s stopped: %s",
                self.step_id,
                self.session_id,
                exc,
            )
            self._streaming = False
            return
        if written is None:  # the session is over: nobody follows it any more
            self._streaming = False
            return
        self._seq += 1


def delta_json(entry_id: Any, fields: dict[Any, Any]) -> dict[str, Any]:
    """A delta entry as the API shows it: id (the stream id), stepId, agentId, text, seq, done."""
    decoded = {text(key): text(value) for key, value in fields.items()}
    return {
        "id": text(entry_id),
        "stepId": decoded.get("stepId", ""),
        "agentId": decoded.get("agentId", ""),
        "text": decoded.get("text", ""),
        "seq": int(decoded.get("seq", "0")),
        "done": decoded.get("done") == "1",
    }
