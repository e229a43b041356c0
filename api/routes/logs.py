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

STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
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
    """Server-Sent Events of the session, from its durable log stream: reconnecting with the
    Last-Event-ID header (or ?lastEventId=) resumes exactly after the last event received."""
    services().engine.progress(session_id)  # 404 for an unknown session
    last_id = request.headers.get("Last-Event-ID") or request.args.get("lastEventId") or "0-0"
    last_id = last_id.removeprefix("log-")
    if not STREAM_ID.match(last_id):
        raise ApiError(
            422,
            "invalid_last_event_id",
            f"Last-Event-ID {last_id!r} is not an "
            "event id this stream sent; omit it to start from the beginning",
        )
    stream = stream_with_context(_event_stream(session_id, last_id))
    return Response(
        stream,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _event_stream(session_id: str, last_id: str) -> Iterator[str]:
    logbook, engine = services().logbook, services().engine
    deadline = time.monotonic() + EVENT_STREAM_MAX_S
    yield ": connected\n\n"
    while time.monotonic() < deadline:
        entries = logbook.read_after(session_id, last_id, block_ms=EVENT_BLOCK_MS)
        if not entries:
            if engine.progress(session_id)["status"] in SESSION_TERMINAL and not _more(
                logbook, session_id, last_id
            ):
                return
            yield ": keep-alive\n\n"
            continue
        progress = engine.progress(session_id)
        for entry in entries:
            last_id = entry["id"].removeprefix("log-")
            kind = event_type(entry["message"])
            yield _frame(last_id, kind, {**entry, "type": kind, "progress": progress})
            if kind == "session.finished":
                return


def _more(logbook, session_id: str, last_id: str) -> bool:
    return bool(logbook.read_after(session_id, last_id, block_ms=0))


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
        {200: Reply("an event stream; it ends with session.finished", {"text/event-stream": None})},
        params=(
            SESSION_ID,
            Param("Last-Event-ID", "header", {"type": "string"}, "resume after this event id"),
            Param("lastEventId", "query", {"type": "string"}, "the same, for EventSource"),
        ),
        errors=(*BY_ID, 422, *STORE),
    ),
)
