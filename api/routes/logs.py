"""Logs, statistics and live events of sessions."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from flask import Blueprint, Response, jsonify, request, stream_with_context
from pydantic import Field, StringConstraints

from api import schemas
from api.body import query_args
from api.errors import ApiError
from api.operations import BY_ID, SESSION_ID, STORE, Operation, Param, Reply, ok
from api.routes import services
from orchestrator.core.models import RequestModel
from orchestrator.core.stats import session_stats
from orchestrator.core.statuses import SESSION_TERMINAL
from orchestrator.store.logbook import LogFilter, event_type

blueprint = Blueprint("logs", __name__, url_prefix="/api/orchestrator")

START = "0-0"
# an SSE id: "<log id>[.<delta id>]" (stream ids, ASCII digits); "log-<id>" as entries are named
EVENT_ID = re.compile(r"(?:log-)?([0-9]{1,20}-[0-9]{1,20})(?:\.([0-9]{1,20}-[0-9]{1,20}))?")
MAX_ID_PART = 2**64 - 1  # each half of a stream id is an unsigned 64-bit number
STEP_DELTA = "step.delta"
DELTA_FIELDS = ("stepId", "agentId", "text", "seq", "done")
EVENT_BATCH = 100  # entries of each stream per read
EVENT_BLOCK_MS = 4000  # under the API's Redis socket timeout (5 s)
EVENT_STREAM_MAX_S = 300  # a client reconnects with Last-Event-ID after this


class LogQuery(RequestModel):
    level: Literal["debug", "info", "warn", "error", "critical"] | None = None
    source: Literal["task", "agent", "orchestrator"] | None = None
    agent_id: Annotated[str, StringConstraints(max_length=128)] | None = None
    task_id: Annotated[str, StringConstraints(max_length=128)] | None = None
    since: Annotated[str, StringConstraints(max_length=64)] | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: Annotated[str, StringConstraints(pattern=r"^log-\d{1,20}-\d{1,20}$")] | None = None


def parse_query() -> LogFilter:
    query = query_args(LogQuery)
    return LogFilter(
        min_level=query.level,
        source=query.source,
        agent_id=query.agent_id,
        task_id=query.task_id,
        since_ms=since_ms(query.since),
        limit=query.limit,
        cursor=query.cursor,
    )


def since_ms(value: str | None) -> int | None:
    """``since`` as epoch milliseconds or an ISO 8601 time."""
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError as exc:
        raise ApiError(
            422,
            "validation_error",
            f"since {value!r} is neither epoch milliseconds "
            "nor an ISO 8601 time such as 2024-01-15T10:00:00Z",
            {"errors": [{"location": "query.since", "message": str(exc), "type": "value_error"}]},
        ) from exc


@blueprint.get("/sessions/<session_id>/logs")
def session_logs(session_id: str):
    """The session's log entries, oldest first, filtered: ?level= (minimum), source, agentId,
    taskId, since, limit, cursor (the previous page's nextCursor)."""
    services().engine.progress(session_id)  # 404 for an unknown session
    entries, next_cursor = services().logbook.query(session_id, parse_query())
    return jsonify({"sessionId": session_id, "logs": entries, "nextCursor": next_cursor})


@blueprint.get("/logs")
def recent_logs():
    """Entries across sessions: the newest ?limit= (default 100), or filtered pages. Their ids
    are the global stream's; a session's own log numbers the same entries in its stream."""
    flt = parse_query()
    if not request.args.keys() - {"limit"}:
        return jsonify({"logs": services().logbook.recent(flt.limit), "nextCursor": None})
    entries, next_cursor = services().logbook.query(None, flt)
    return jsonify({"logs": entries, "nextCursor": next_cursor})


@blueprint.get("/sessions/<session_id>/stats")
def stats(session_id: str):
    snapshot = services().engine.snapshot(session_id)
    entries = services().logbook.session_entries(session_id, limit=100_000)
    return jsonify(session_stats(snapshot, entries))


@blueprint.get("/sessions/<session_id>/events")
def events(session_id: str):
    """Server-Sent Events of the session: its durable log stream, and its delta stream (running
    steps' text, as ``step.delta``) read in the same XREAD. Each event's id holds the position in
    both (``<log id>`` or ``<log id>.<delta id>``), so reconnecting with the Last-Event-ID header
    (or ?lastEventId=) resumes both exactly after the last event received."""
    services().engine.progress(session_id)  # 404 for an unknown session
    raw = request.headers.get("Last-Event-ID") or request.args.get("lastEventId") or START
    cursor = parse_event_id(raw)
    if cursor is None:
        raise ApiError(
            422,
            "invalid_last_event_id",
            f"Last-Event-ID {raw.removeprefix('log-')[:100]!r} is not an "
            "event id this stream sent; omit it to start from the beginning",
        )
    stream = stream_with_context(_event_stream(session_id, *cursor))
    return Response(
        stream,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def parse_event_id(value: str) -> tuple[str, str] | None:
    """(log stream id, delta stream id) of an event id: ``<log id>.<delta id>``, or the log id
    alone (``log-<id>`` too, as entries are numbered), whose delta position is the start.
    None when it is not one."""
    match = EVENT_ID.fullmatch(value)
    if match is None:
        return None
    log_id, delta_id = match.group(1), match.group(2) or START
    parts = (*log_id.split("-"), *delta_id.split("-"))
    return None if any(int(part) > MAX_ID_PART for part in parts) else (log_id, delta_id)


def event_id(log_id: str, delta_id: str) -> str:
    """The SSE id of an event: both stream positions, the delta one left out while at the start
    (so a session without deltas numbers its events with plain log stream ids)."""
    return log_id if delta_id == START else f"{log_id}.{delta_id}"


def _event_stream(session_id: str, log_id: str, delta_id: str) -> Iterator[str]:
    deltas, engine = services().deltas, services().engine
    deadline = time.monotonic() + EVENT_STREAM_MAX_S
    yield ": connected\n\n"
    while time.monotonic() < deadline:
        logs, chunks = deltas.read_events(
            session_id, log_id, delta_id, block_ms=EVENT_BLOCK_MS, count=EVENT_BATCH
        )
        if not logs and not chunks:
            if engine.progress(session_id)["status"] in SESSION_TERMINAL and not _more(
                session_id, log_id, delta_id
            ):
                return
            yield ": keep-alive\n\n"
            continue
        progress = engine.progress(session_id)
        for is_delta, entry in in_order(logs, chunks, EVENT_BATCH):
            if is_delta:
                delta_id = entry["id"]
                data = {"type": STEP_DELTA, **{k: entry[k] for k in DELTA_FIELDS}}
                yield _frame(event_id(log_id, delta_id), STEP_DELTA, {**data, "progress": progress})
                continue
            log_id = entry["id"].removeprefix("log-")
            kind = event_type(entry["message"])
            yield _frame(
                event_id(log_id, delta_id), kind, {**entry, "type": kind, "progress": progress}
            )
            if kind == "session.finished":
                return


def in_order(
    logs: list[dict[str, Any]], chunks: list[dict[str, Any]], count: int
) -> list[tuple[bool, dict[str, Any]]]:
    """Log entries and delta entries merged by stream id (both carry the Redis server's clock):
    (is a delta, entry). A stream that filled its ``count`` may have more before the other's
    later entries: those are kept for the next read, so the order holds across reads too."""
    tagged = [(position(e["id"].removeprefix("log-")), False, e) for e in logs]
    tagged += [(position(c["id"]), True, c) for c in chunks]
    caps = [
        position(batch[-1]["id"].removeprefix("log-"))
        for batch in (logs, chunks)
        if len(batch) >= count
    ]
    if caps:
        tagged = [item for item in tagged if item[0] <= min(caps)]
    tagged.sort(key=lambda item: (item[0], item[1]))
    return [(is_delta, entry) for _, is_delta, entry in tagged]


def position(stream_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = stream_id.partition("-")
    return int(milliseconds), int(sequence)


def _more(session_id: str, log_id: str, delta_id: str) -> bool:
    logs, chunks = services().deltas.read_events(session_id, log_id, delta_id, block_ms=0)
    return bool(logs or chunks)


def _frame(event_id: str, kind: str, data: dict[str, Any]) -> str:
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


OPERATIONS = (
    Operation(
        "get",
        "/api/orchestrator/sessions/<session_id>/logs",
        "logs.session_logs",
        "A session's log entries, oldest first, filtered",
        "logs",
        {200: ok(schemas.SessionLogs)},
        params=(SESSION_ID,),
        query=LogQuery,
        errors=(*BY_ID, 422, *STORE),
    ),
    Operation(
        "get",
        "/api/orchestrator/logs",
        "logs.recent_logs",
        "Recent log entries across sessions, or filtered pages",
        "logs",
        {200: ok(schemas.RecentLogs)},
        query=LogQuery,
        errors=(422, *STORE),
    ),
    Operation(
        "get",
        "/api/orchestrator/sessions/<session_id>/stats",
        "logs.stats",
        "A session's log and step statistics",
        "logs",
        {200: ok(schemas.SessionStats)},
        params=(SESSION_ID,),
        errors=(*BY_ID, *STORE),
    ),
    Operation(
        "get",
        "/api/orchestrator/sessions/<session_id>/events",
        "logs.events",
        "Live events of a session (Server-Sent Events); resume with Last-Event-ID",
        "logs",
        {
            200: Reply(
                "an event stream of log events and step.delta text chunks; it ends with "
                "session.finished",
                {"text/event-stream": None},
            )
        },
        params=(
            SESSION_ID,
            Param(
                "Last-Event-ID",
                "header",
                {"type": "string"},
                "resume after this event id: <log id> or <log id>.<delta id>",
            ),
            Param("lastEventId", "query", {"type": "string"}, "the same, for EventSource"),
        ),
        errors=(*BY_ID, 422, *STORE),
        description=(
            "Each log entry of the session is an event named by its message (session.created, "
            "step.started, step.completed, state.updated, ..., or log), with the entry and the "
            "session's progress as data. While a step streams model text, step.delta events "
            "carry it in coalesced chunks: data {type, stepId, agentId, text (the new text "
            "only: append it), seq (1, 2, ... per run of the step), done, progress}. An event's "
            "id is its position in both streams, <log id>.<delta id> (the log id alone while "
            "no delta was sent); a Last-Event-ID that is not one answers 422 "
            "invalid_last_event_id."
        ),
    ),
)
