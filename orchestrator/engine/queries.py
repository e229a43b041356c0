"""Reading sessions: the snapshot, the progress counters, and the newest-first listing."""

from __future__ import annotations

from typing import Any

from orchestrator.core.errors import CursorError, SessionNotFoundError
from orchestrator.core.logentry import iso_from_ms
from orchestrator.core.models import SessionSnapshot, SessionSummary
from orchestrator.core.snapshots import build_snapshot
from orchestrator.core.statuses import SessionStatus
from orchestrator.engine.context import EngineContext


class Queries:
    def __init__(self, context: EngineContext) -> None:
        self.context = context
        self.sessions = context.sessions

    def owner(self, session_id: str) -> str | None:
        """The session's userId (None for none, or no such session): one field, for access
        checks that run before every session route."""
        return self.sessions.owner(session_id)

    def progress(self, session_id: str) -> dict[str, Any]:
        """Status and step counters only (one round trip). Raises SessionNotFoundError."""
        progress = self.sessions.progress(session_id)
        if progress is None:
            raise SessionNotFoundError(session_id)
        return progress

    def snapshot(self, session_id: str) -> SessionSnapshot:
        record = self.sessions.read(session_id)
        if record is None:
            raise SessionNotFoundError(session_id)
        return build_snapshot(session_id, record)

    def list_sessions(
        self, *, user_id: str | None, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[SessionSummary], str | None]:
        """Sessions newest first, filtered by user and status, a page at a time."""
        page, next_cursor = self.sessions.index.list_page(
            user_id=user_id, status=status, limit=limit, cursor=decode_cursor(cursor)
        )
        summaries = [
            SessionSummary(
                session_id=row["sessionId"],
                status=SessionStatus(row["status"]),
                goal=row.get("goal", ""),
                user_id=row.get("userId"),
                chat_id=row.get("chatId"),
                completed_tasks=int(row.get("completedTasks", 0)),
                failed_tasks=int(row.get("failedTasks", 0)),
                total_tasks=int(row.get("totalTasks", 0)),
                start_time=iso_from_ms(int(row["startTime"])) or "",
                end_time=iso_from_ms(int(row["endTime"])) if row.get("endTime") else None,
            )
            for row in page
        ]
        return summaries, f"{next_cursor[0]}:{next_cursor[1]}" if next_cursor else None


def decode_cursor(cursor: str | None) -> tuple[int, str] | None:
    """ "<ms>:<session id>" from a previous page, or None. Raises CursorError when malformed."""
    if not cursor:
        return None
    score, _, session_id = cursor.partition(":")
    if not score.isdigit() or not session_id:
        raise CursorError(cursor)
    return int(score), session_id
