"""Idempotency keys of POST /orchestrate in Redis: which session a (caller, key) made, with a
digest of the body it came with (orchestrator/engine/idempotency.py says how they are used)."""

from __future__ import annotations

import redis

from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.scripts import text


@translates_redis_errors
class IdempotencyStore:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client, self._keys = client, keys

    def claim(self, scope: str, digest: str, session_id: str, ttl_s: int) -> tuple[str, str] | None:
        """Take ``scope`` for ``session_id`` (SET NX with the TTL). None when taken here; else
        the (body digest, session id) that holds it. A holder that vanishes between the two
        reads (released, expired) is claimed again."""
        key = self._keys.idempotency(scope)
        while True:
            if self._client.set(key, f"{digest}|{session_id}", nx=True, ex=ttl_s):
                return None
            held = self._client.get(key)
            if held is not None:
                held_digest, _, held_sid = text(held).partition("|")
                return held_digest, held_sid

    def release(self, scope: str, session_id: str) -> None:
        """Give the key up when the submit it was claimed for failed (only if it still holds
        ``session_id``), so the client's retry can submit again."""
        key = self._keys.idempotency(scope)
        with self._client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                held = pipe.get(key)
                if held is None or not text(held).endswith(f"|{session_id}"):
                    return
                pipe.multi()
                pipe.delete(key)
                pipe.execute()
            except redis.WatchError:
                return  # changed meanwhile: no longer ours to release
