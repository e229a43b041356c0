"""Session state in Redis: shared, private and temporary entries, locks, and transactions.

- shared: one hash per session (``Keys.shared_state``): what every step receives as its
  ``sharedState`` and what step completions write their state updates to;
- private: one hash per agent (``Keys.private_state``), agents listed in ``private_state_index``;
- temporary: one string per entry that Redis expires (``Keys.temporary_state``), listed in
  ``temporary_state_index`` scored by expiry time (ms) and pruned as it is read.

A key may exist in several scopes; a read sees the most specific one, as a local variable shadows
a global: the reading agent's private entry, else an unexpired temporary one, else the shared one.
Values are JSON, stored as their compact encoding. Locks are redis-py Locks (token-owned, with a
TTL, so a dead holder's lock frees itself). Transactions are optimistic: reads record the raw JSON
they saw, and commit applies the buffered writes in one Lua script only if none of those changed.

This module holds the StateManager, state scopes and entries, and the lock errors. Key and value
checks live in state_values.py, transactions in transactions.py; their public names are
re-exported here, so ``orchestrator.store.state`` remains the one place to import from.

    StateValidationError     a bad key, value, scope, TTL or lock argument (422)
    └── StateKeyError        a key, lock name or agent id outside its allowed pattern
    StateConflictError       keys a transaction read changed before it committed (409)
    TransactionClosedError   a finished transaction used again (409)
    LockTimeoutError         a lock not acquired within blocking_timeout_s (409)
    LockLostError            a lock whose TTL ran out before its holder released it (409)
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import Any

import redis
from redis.exceptions import LockNotOwnedError
from redis.lock import Lock

from orchestrator.core.errors import (
    LockLostError,
    LockTimeoutError,
    StateConflictError,
    StateKeyError,
    StateValidationError,
    TransactionClosedError,
)
from orchestrator.core.models import AGENT_ID_PATTERN
from orchestrator.core.state_values import KEY_PATTERN, KEY_RULE, check_key, encode
from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.scripts import text
from orchestrator.store.transactions import Transaction, TransactionStatus

__all__ = [
    "AGENT_RULE",
    "KEY_PATTERN",
    "KEY_RULE",
    "LockLostError",
    "LockTimeoutError",
    "StateConflictError",
    "StateEntry",
    "StateKeyError",
    "StateManager",
    "StateType",
    "StateValidationError",
    "Transaction",
    "TransactionClosedError",
    "TransactionStatus",
    "check_key",
    "encode",
    "positive_ms",
]

AGENT_RULE = "use a letter or digit, then up to 63 letters, digits, '_', '.' or '-'"


class StateType(StrEnum):
    SHARED = "shared"
    PRIVATE = "private"
    TEMPORARY = "temporary"


@dataclass(frozen=True)
class StateEntry:
    """A visible state value, the scope it came from, and for temporary entries when it expires."""

    value: Any
    type: StateType
    expires_at_ms: int | None = None


def positive_ms(seconds: object, field: str) -> int:
    """``seconds`` as whole milliseconds, at least 1; StateValidationError otherwise."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or round(seconds * 1000) < 1
    ):
        raise StateValidationError(field, seconds, "give a finite number of seconds, >= 0.001")
    return round(seconds * 1000)


def _check_agent(agent_id: object) -> str:
    if not isinstance(agent_id, str) or not re.fullmatch(AGENT_ID_PATTERN, agent_id):
        raise StateKeyError("agent id", agent_id, AGENT_RULE)
    return agent_id


def _check_scope(kind: object, agent_id: object) -> StateType:
    """The StateType ``kind`` names, checking that ``agent_id`` comes with private state only."""
    try:
        scope = StateType(kind if isinstance(kind, str) else "")
    except ValueError as exc:
        raise StateValidationError("state type", kind, f"use {', '.join(StateType)}") from exc
    if (agent_id is not None) != (scope is StateType.PRIVATE):
        advice = (
            "private state belongs to one agent: pass its agent_id"
            if scope is StateType.PRIVATE
            else f"only private state takes one, not {scope}: drop it or pass type=private"
        )
        raise StateValidationError("agent_id", agent_id, advice, type=scope.value)
    if agent_id is not None:
        _check_agent(agent_id)
    return scope


def _check_ttl(scope: StateType, ttl_s: object) -> int:
    """``ttl_s`` in ms for temporary state, which needs it; 0 for the others, which refuse it."""
    if (ttl_s is not None) != (scope is StateType.TEMPORARY):
        advice = (
            "temporary state expires: pass ttl_s, the seconds it lives"
            if scope is StateType.TEMPORARY
            else f"only temporary state takes one, not {scope}: drop it or pass type=temporary"
        )
        raise StateValidationError("ttl_s", ttl_s, advice, type=scope.value)
    return 0 if ttl_s is None else positive_ms(ttl_s, "ttl_s")


def _entry(raw: bytes | str, scope: StateType, expires_at_ms: int | None = None) -> StateEntry:
    return StateEntry(json.loads(raw), scope, expires_at_ms)


def _release(lock: Lock) -> bool:
    """Release ``lock``; False if it had expired (and may be someone else's by now)."""
    try:
        lock.release()
    except LockNotOwnedError:
        return False
    return True


@translates_redis_errors
class StateManager:
    """Reads and writes a session's state, and hands out its locks and transactions.

    ``clock`` (seconds since the epoch) only scores temporary entries in their index.
    """

    def __init__(
        self, client: redis.Redis, keys: Keys, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._client, self._keys, self._clock = client, keys, clock
        lua = resources.files("orchestrator.store").joinpath("lua", "commit_transaction.lua")
        self._commit_script = client.register_script(lua.read_text())

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def set(
        self,
        session_id: str,
        key: str,
        value: Any,
        *,
        type: StateType = StateType.SHARED,
        agent_id: str | None = None,
        ttl_s: float | None = None,
    ) -> None:
        """Store ``value`` (JSON) under ``key`` in one scope of the session's state.

        Private state needs ``agent_id``, temporary state ``ttl_s``; the other types refuse them.
        Raises StateValidationError for those, a bad key, or a value that is not JSON.
        """
        scope = _check_scope(type, agent_id)
        ttl_ms = _check_ttl(scope, ttl_s)
        raw, k = encode(check_key(key), value), self._keys
        pipe = self._client.pipeline(transaction=True)
        if scope is StateType.SHARED:
            pipe.hset(k.shared_state(session_id), key, raw)
        elif scope is StateType.PRIVATE:
            pipe.hset(k.private_state(session_id, str(agent_id)), key, raw)
            pipe.sadd(k.private_state_index(session_id), str(agent_id))
        else:
            now, index = self._now_ms(), k.temporary_state_index(session_id)
            pipe.set(k.temporary_state(session_id, key), raw, px=ttl_ms)
            pipe.zadd(index, {key: now + ttl_ms})
            pipe.zremrangebyscore(index, "-inf", now)
        pipe.execute()

    def get(
        self, session_id: str, key: str, *, agent_id: str | None = None, default: Any = None
    ) -> Any:
        """The visible value of ``key``, or ``default`` if no scope holds it.

        Precedence: ``agent_id``'s private entry, else an unexpired temporary entry, else the
        shared entry, read in one MULTI. Pass a sentinel ``default`` to tell JSON null from absent.
        """
        check_key(key)
        k = self._keys
        pipe = self._client.pipeline(transaction=True)
        if agent_id is not None:
            pipe.hget(k.private_state(session_id, _check_agent(agent_id)), key)
        pipe.get(k.temporary_state(session_id, key))
        pipe.hget(k.shared_state(session_id), key)
        found = [raw for raw in pipe.execute() if raw is not None]
        return json.loads(found[0]) if found else default

    def delete(
        self,
        session_id: str,
        key: str,
        *,
        type: StateType = StateType.SHARED,
        agent_id: str | None = None,
    ) -> bool:
        """Remove ``key`` from one scope (the others keep theirs); True if it was there."""
        scope, k = _check_scope(type, agent_id), self._keys
        check_key(key)
        if scope is StateType.SHARED:
            return bool(self._client.hdel(k.shared_state(session_id), key))
        if scope is StateType.PRIVATE:
            return bool(self._client.hdel(k.private_state(session_id, str(agent_id)), key))
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(k.temporary_state(session_id, key))
        pipe.zrem(k.temporary_state_index(session_id), key)
        return bool(pipe.execute()[0])

    def entries(self, session_id: str, *, agent_id: str | None = None) -> dict[str, StateEntry]:
        """Every entry visible to ``agent_id`` (or to no agent in particular), by key.

        Same precedence as ``get``. Prunes expired members of the temporary index; an entry Redis
        expired since its index score was written is left out.
        """
        k, now = self._keys, self._now_ms()
        index = k.temporary_state_index(session_id)
        pipe = self._client.pipeline(transaction=True)
        pipe.zremrangebyscore(index, "-inf", now)
        pipe.zrangebyscore(index, f"({now}", "+inf", withscores=True)
        pipe.hgetall(k.shared_state(session_id))
        if agent_id is not None:
            pipe.hgetall(k.private_state(session_id, _check_agent(agent_id)))
        _, live, shared, *private = pipe.execute()
        visible = {text(key): _entry(raw, StateType.SHARED) for key, raw in shared.items()}
        temporary = [k.temporary_state(session_id, text(member)) for member, _ in live]
        raws = self._client.mget(temporary) if temporary else []
        for (member, expires_at), raw in zip(live, raws, strict=True):
            if raw is not None:
                visible[text(member)] = _entry(raw, StateType.TEMPORARY, int(expires_at))
        for key, raw in (private[0] if private else {}).items():
            visible[text(key)] = _entry(raw, StateType.PRIVATE)
        return visible

    def lock(self, session_id: str, name: str, *, ttl_s: float, blocking_timeout_s: float) -> Lock:
        """A redis-py Lock on ``name`` in the session, not yet acquired.

        It expires ``ttl_s`` after it is acquired (or extended), so a holder that dies frees it;
        ``acquire()`` waits up to ``blocking_timeout_s`` (0: try once). Its token is not
        thread-local, so another thread of the holder may release or extend it.
        """
        check_key(name, "lock name")
        positive_ms(ttl_s, "ttl_s")
        if blocking_timeout_s != 0:
            positive_ms(blocking_timeout_s, "blocking_timeout_s")
        key, wait_s = self._keys.lock(session_id, name), blocking_timeout_s
        return self._client.lock(key, timeout=ttl_s, blocking_timeout=wait_s, thread_local=False)

    @contextmanager
    def locked(
        self, session_id: str, name: str, *, ttl_s: float, blocking_timeout_s: float
    ) -> Iterator[Lock]:
        """Hold the lock ``name`` for the ``with`` block, releasing it at the end.

        Raises LockTimeoutError if another owner held it for all of ``blocking_timeout_s``, and
        LockLostError if the block outlasted ``ttl_s`` (unless the block raised something itself).
        """
        lock = self.lock(session_id, name, ttl_s=ttl_s, blocking_timeout_s=blocking_timeout_s)
        if not lock.acquire():
            raise LockTimeoutError(session_id, name, blocking_timeout_s)
        try:
            yield lock
        finally:
            owned = _release(lock)
        if not owned:
            raise LockLostError(session_id, name, ttl_s)

    def begin(self, session_id: str) -> Transaction:
        """A new optimistic transaction over the session's shared state (see Transaction)."""
        state_key = self._keys.shared_state(session_id)
        return Transaction(self._client, self._commit_script, session_id, state_key)

    def expire_session_state(self, session_id: str, retention_s: float) -> None:
        """Make all of the session's state expire ``retention_s`` from now (for ended sessions).

        Covers the shared hash, every agent's private hash (found via the private index), both
        indexes, and temporary entries that would otherwise outlive the retention.
        """
        retention_ms, k = positive_ms(retention_s, "retention_s"), self._keys
        agents = self._client.smembers(k.private_state_index(session_id))
        index = k.temporary_state_index(session_id)
        outliving = self._client.zrangebyscore(index, f"({self._now_ms() + retention_ms}", "+inf")
        pipe = self._client.pipeline(transaction=True)
        for agent_id in agents:
            pipe.pexpire(k.private_state(session_id, text(agent_id)), retention_ms)
        for key in outliving:
            pipe.pexpire(k.temporary_state(session_id, text(key)), retention_ms)
        for owned in (k.shared_state(session_id), k.private_state_index(session_id), index):
            pipe.pexpire(owned, retention_ms)
        pipe.execute()
