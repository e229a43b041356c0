"""Server-Sent Events on the client side: ``SseParser`` (the WHATWG event-stream rules) and
``split_lines``, which splits a byte stream into the parser's lines as its bytes arrive. Used by
the SDK's ``Session.events`` and by the CLI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SseEvent:
    """One dispatched Server-Sent Event. ``id`` is the last event id seen on the stream (ids
    persist until changed, as the spec says), ``event`` defaults to "message"."""

    id: str | None
    event: str
    data: str
    retry_ms: int | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class SseParser:
    """Parses an event stream line by line (lines without their end-of-line characters).

    ``feed`` returns an event when a blank line completes one, else None. Comments (lines that
    start with ":") and unknown fields are ignored; an event without data is not dispatched; a
    partial event at the end of a dropped connection is never returned, and its id does not
    become ``last_event_id`` (resuming after it would skip the event).
    """

    def __init__(self, last_event_id: str | None = None) -> None:
        self.last_event_id = last_event_id  # of the last dispatched event: resume after it
        self.retry_ms: int | None = None
        self._id = last_event_id  # the id field seen last, adopted when its event completes
        self._event = ""
        self._data: list[str] = []

    def reset(self) -> None:
        """Forget a partial event (its connection dropped), its id included."""
        self._id, self._event, self._data = self.last_event_id, "", []

    def feed(self, line: str) -> SseEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        self.last_event_id = self._id
        data, kind = self._data, self._event or "message"
        self._data, self._event = [], ""
        if not data:
            return None
        return SseEvent(self.last_event_id, kind, "\n".join(data), self.retry_ms)


def split_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Lines of a byte stream split on LF (a CR before it is dropped), decoded as UTF-8. Unlike
    ``Response.iter_lines`` it never invents a blank line when CR and LF arrive in different
    chunks, which would dispatch an event early. A last line without LF is not yielded."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            yield raw.removesuffix(b"\r").decode("utf-8", errors="replace")


async def asplit_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[str]:
    """split_lines over an async byte stream."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            yield raw.removesuffix(b"\r").decode("utf-8", errors="replace")
