"""Idempotency keys of POST /orchestrate in Redis: which session a (caller, key) made, with a
digest of the body it came with (orchestrator/engine/idempotency.py says how they are used).

A key is claimed for a short pending TTL and kept for its full TTL by the transaction that
stores its session (:meth:`IdempotencyStore.keep`, queued on SessionStore.create's pipeline):
a claim whose session never got stored (its submit failed and could not give the key up, e.g.
Redis went away or a failover lost the session) expires by itself instead of pointing at a
session that does not exist for the whole TTL."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from redis.client import Pipeline

from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.replication import DurableWrites
from orchestrator.store.scripts import Scripts, text


@dataclass(frozen=True)
class ClaimedKey:
    """A key claimed for a session: its scope, the body's digest, the session id, and how long
    to keep it once the session is stored."""

    scope: str
    digest: str
    session_id: str
    ttl_s: int


@translates_redis_errors
class IdempotencyStore:
    def __init__(self, client: redis.Redis, keys: Keys, durable: DurableWrites) -> None:
        self._client, self._keys = client, keys
        self._durable = durable
        # release_idempotency.lua: compare and delete, which a Redis out of memory still runs
        self._release = Scripts(client)["release_idempotency"]

    def claim(
        self, scope: str, digest: str, session_id: str, pending_s: int
    ) -> tuple[str, str] | None:
        """Take ``scope`` for ``session_id`` (SET NX, expiring after ``pending_s`` unless
        :meth:`keep` runs). None when taken here; else the (body digest, session id) that
        holds it. A holder that vanishes between the two reads (released, expired) is claimed
        again."""
        key = self._keys.idempotency(scope)
        while True:
            if self._client.set(key, f"{digest}|{session_id}", nx=True, ex=pending_s):
                return None
            held = self._client.get(key)
            if held is not None:
                held_digest, _, held_sid = text(held).partition("|")
                return held_digest, held_sid

    def keep(self, claimed: ClaimedKey, *, pipeline: Pipeline) -> None:
        """Queue on ``pipeline`` (the transaction storing the session) keeping the key for its
        full TTL, naming the stored session (written again: a first request slower than the
        pending TTL still leaves the key naming the session it stored)."""
        value = f"{claimed.digest}|{claimed.session_id}"
        pipeline.set(self._keys.idempotency(claimed.scope), value, ex=claimed.ttl_s)

    def confirm(self, claimed: ClaimedKey) -> None:
        """Return once the replicas MEOWSTIK_REDIS_MIN_REPLICA_ACKS asks for have the key (and
        so the session, stored before it): what a replay answers only after, as the first
        request did. A write of the key as it is (XX, KEEPTTL), for WAIT to follow on its
        connection; nothing is sent when no replica is required.

        Raises:
            ReplicaAckTimeoutError: too few replicas confirmed it in time.
        """
        if not self._durable.acks.replicas:
            return
        pipe = self._durable.transaction()
        value = f"{claimed.digest}|{claimed.session_id}"
        pipe.set(self._keys.idempotency(claimed.scope), value, xx=True, keepttl=True)
        self._durable.commit(pipe)

    def release(self, scope: str, session_id: str) -> None:
        """Give the key up when the submit it was claimed for failed (only if it still holds
        ``session_id``), so the client's retry can submit again."""
        self._release(keys=[self._keys.idempotency(scope)], args=[f"|{session_id}"])
