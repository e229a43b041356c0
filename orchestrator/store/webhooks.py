"""Webhook deliveries in Redis: the outbox the session-ending scripts add to (Keys.webhook_outbox:
"<session id>|<end ms>" -> when to try next), claims so one worker delivers each at a time, and
each session's attempts (Keys.deliveries) for GET .../sessions/<id>/deliveries."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import redis

from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.scripts import text

MAX_RECORDS = 100  # attempts kept per session (the newest)

# Take a due entry for ``lease`` ms: only if its time has come (another worker holding it moved
# it into the future), so two workers never deliver the same entry at once.
_CLAIM = """
local due = redis.call("ZSCORE", KEYS[1], ARGV[1])
if due and tonumber(due) <= tonumber(ARGV[2]) then
  redis.call("ZADD", KEYS[1], ARGV[3], ARGV[1])
  return 1
end
return 0
"""


@translates_redis_errors
class WebhookStore:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client, self._keys = client, keys
        self._claim = client.register_script(_CLAIM)

    def due(self, now_ms: int, limit: int = 20) -> list[str]:
        """Entries whose time has come, oldest first."""
        found = self._client.zrangebyscore(self._keys.webhook_outbox, "-inf", now_ms, 0, limit)
        return [text(m) for m in found]

    def claim(self, entry: str, now_ms: int, lease_ms: int) -> bool:
        return bool(self._claim([self._keys.webhook_outbox], [entry, now_ms, now_ms + lease_ms]))

    def exists(self, session_id: str) -> bool:
        return bool(self._client.exists(self._keys.session(session_id)))

    def callback(self, session_id: str) -> str | None:
        raw = self._client.hget(self._keys.session(session_id), "callbackUrl")
        return None if raw is None else text(raw)

    def record(self, entry: str, attempt: Mapping[str, Any], next_ms: int | None) -> None:
        """Keep an attempt, and either retry the entry at ``next_ms`` or drop it (delivered or
        abandoned), in one transaction. The record lives as long as the session's keys."""
        session_id = entry.split("|", 1)[0]
        k = self._keys
        ttl_ms = self._client.pttl(k.session(session_id))
        pipe = self._client.pipeline(transaction=True)
        pipe.rpush(k.deliveries(session_id), json.dumps(attempt, separators=(",", ":")))
        pipe.ltrim(k.deliveries(session_id), -MAX_RECORDS, -1)
        if ttl_ms and ttl_ms > 0:
            pipe.pexpire(k.deliveries(session_id), ttl_ms)
        if next_ms is None:
            pipe.zrem(k.webhook_outbox, entry)
        else:
            pipe.zadd(k.webhook_outbox, {entry: next_ms})
        pipe.execute()

    def attempts(self, session_id: str) -> list[dict[str, Any]]:
        raw = self._client.lrange(self._keys.deliveries(session_id), 0, -1)
        return [json.loads(r) for r in raw]

    def pending(self, session_id: str) -> list[tuple[str, int]]:
        """This session's entries still in the outbox, with when they are tried next (ms)."""
        prefix = f"{session_id}|"
        rows = self._client.zscan_iter(self._keys.webhook_outbox, match=f"{prefix}*", count=500)
        return [(text(member), int(score)) for member, score in rows]
