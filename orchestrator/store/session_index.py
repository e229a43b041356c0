"""Listing sessions from index sorted sets (all, by user, by status), newest first, a page at a
time, without scanning keys. The status index is kept by the Lua scripts that change status."""

from __future__ import annotations

from typing import Any

import redis

from orchestrator.core.statuses import SessionStatus
from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.scripts import text

SUMMARY_FIELDS = (
    "sessionId",
    "status",
    "goal",
    "userId",
    "chatId",
    "completedTasks",
    "failedTasks",
    "totalTasks",
    "startTime",
    "endTime",
)


@translates_redis_errors
class SessionIndex:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def list_page(
        self,
        *,
        user_id: str | None,
        status: str | None,
        limit: int,
        cursor: tuple[int, str] | None,
    ) -> tuple[list[dict[str, str]], tuple[int, str] | None]:
        """A page of session summaries, newest first, from an index (never a key scan).

        ``cursor`` is (creation ms, session id) of the last session of the previous page.
        Returns the page and the cursor of the next one (None at the end). Sessions whose
        retention expired are pruned from the index as they are met.
        """
        k = self._keys
        index = (
            k.sessions_by_user(user_id)
            if user_id
            else k.sessions_by_status(status)
            if status
            else k.sessions_index
        )
        page: list[dict[str, str]] = []
        position: tuple[int, str] | None = cursor
        top = str(cursor[0]) if cursor else "+inf"
        while len(page) <= limit:
            reply: Any = self._client.zrevrangebyscore(
                index, top, "-inf", 0, limit * 2 + 1, withscores=True
            )
            batch = [
                (text(m), int(score))
                for m, score in reply
                if not (position and int(score) == position[0] and text(m) >= position[1])
            ]
            if not batch:
                break
            for (sid, score), fields in zip(
                batch, self._summaries([m for m, _ in batch]), strict=True
            ):
                if not fields:
                    self._client.zrem(index, sid)
                elif status is None or fields.get("status") == status:
                    page.append({**fields, "_score": str(score)})
                position = (score, sid)
            top = str(score)
        if len(page) <= limit:
            return page, None
        page = page[:limit]
        return page, (int(page[-1]["_score"]), page[-1]["sessionId"])

    def _summaries(self, session_ids: list[str]) -> list[dict[str, str]]:
        fields = SUMMARY_FIELDS
        pipe = self._client.pipeline(transaction=False)
        for sid in session_ids:
            pipe.hmget(self._keys.session(sid), fields)
        out = []
        for values in pipe.execute():
            row = {name: text(v) for name, v in zip(fields, values, strict=True) if v is not None}
            out.append(row if "sessionId" in row else {})
        return out

    def prune_expired(self, *, now_ms: int, retention_ms: int, limit: int = 500) -> int:
        """Drop index entries whose session's keys have expired, from every index (all, by
        status, by user). A session ends after it is created, so only entries created more
        than ``retention_ms`` ago can have expired; at most ``limit`` per index per call.
        Returns the number of entries dropped. Runs from the workers' heartbeat, so Redis
        returns to its size once retention has passed, whether or not anyone lists sessions."""
        k = self._keys
        users = sorted(text(u) for u in self._client.smembers(k.session_users))
        indexes = [k.sessions_index, *(k.sessions_by_status(s.value) for s in SessionStatus)]
        indexes += [k.sessions_by_user(user) for user in users]
        cutoff = f"({now_ms - retention_ms}"
        pipe = self._client.pipeline(transaction=False)
        for index in indexes:
            pipe.zrangebyscore(index, "-inf", cutoff, start=0, num=limit)
        candidates = [[text(m) for m in members] for members in pipe.execute()]
        checked = sorted({sid for members in candidates for sid in members})
        if not checked:
            return 0
        for sid in checked:
            pipe.exists(k.session(sid))
        gone = {sid for sid, alive in zip(checked, pipe.execute(), strict=True) if not alive}
        dropped = 0
        for index, members in zip(indexes, candidates, strict=True):
            stale = [sid for sid in members if sid in gone]
            if stale:
                pipe.zrem(index, *stale)
                dropped += len(stale)
        for user in users:
            pipe.exists(k.sessions_by_user(user))
        replies = pipe.execute()
        for user, alive in zip(users, replies[-len(users) :] if users else [], strict=True):
            if not alive:  # an index that emptied is gone: forget the user (re-added on submit)
                self._client.srem(k.session_users, user)
        return dropped
