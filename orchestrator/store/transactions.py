"""Optimistic transactions over a session's shared state, and the errors they raise.

A Transaction (from ``StateManager.begin``) reads through, recording the raw JSON it saw, and
buffers its writes; commit applies them in one Lua script (commit_transaction.lua) only if none
of the keys it read changed meanwhile.

    StateConflictError       keys a transaction read changed before it committed (409)
    TransactionClosedError   a finished transaction used again (409)
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import redis

from orchestrator.core.errors import StateConflictError, TransactionClosedError
from orchestrator.core.state_values import check_key, encode
from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.scripts import text


class TransactionStatus(StrEnum):
    OPEN = "open"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled back"
    CONFLICTED = "rejected by a conflict"


@translates_redis_errors
class Transaction:
    """An optimistic transaction over one session's shared state (the spec's begin, add, commit).

    ``get`` reads through and remembers the raw JSON it saw (or that the key was absent); ``set``
    and ``delete`` only buffer. ``commit`` runs commit_transaction.lua, which applies every write
    at once if each key read still holds exactly what was seen, and otherwise writes nothing.
    Nothing is locked meanwhile, so a transaction never blocks others or outlives a dead client;
    the loser of a race retries. Values compare as strings: a key changed and back is no conflict.
    """

    def __init__(self, client: redis.Redis, script: Any, session_id: str, state_key: str) -> None:
        self.session_id, self.status = session_id, TransactionStatus.OPEN
        self._client, self._script, self._state_key = client, script, state_key
        self._reads: dict[str, str | None] = {}
        self._writes: dict[str, str | None] = {}

    def _check_open(self) -> None:
        if self.status is not TransactionStatus.OPEN:
            raise TransactionClosedError(self.session_id, self.status.value)

    def get(self, key: str, default: Any = None) -> Any:
        """Shared ``key`` as this transaction sees it (its own writes included), or ``default``.

        The first read of a key is the one commit checks; later reads return the same value.
        """
        self._check_open()
        if check_key(key) not in self._writes and key not in self._reads:
            found = self._client.hget(self._state_key, key)
            self._reads[key] = None if found is None else text(found)
        raw = self._writes[key] if key in self._writes else self._reads[key]
        return default if raw is None else json.loads(raw)

    def set(self, key: str, value: Any) -> None:
        """Buffer setting shared ``key`` to ``value`` (JSON); validated now, written at commit."""
        self._check_open()
        self._writes[check_key(key)] = encode(key, value)

    def delete(self, key: str) -> None:
        """Buffer removing shared ``key``."""
        self._check_open()
        self._writes[check_key(key)] = None

    def commit(self) -> None:
        """Apply every buffered write atomically, if no key read since changed.

        Raises StateConflictError naming the changed keys, having written nothing, or
        TransactionClosedError if the transaction was already committed, rolled back or rejected.
        """
        self._check_open()
        args: list[str | int] = [len(self._reads)]
        for key, raw in (*self._reads.items(), *self._writes.items()):
            args += [key, "!" if raw is None else "=" + raw]  # the script's tags, see its header
        reply = self._script(keys=[self._state_key], args=args)
        if text(reply[0]) == "conflict":
            self.status = TransactionStatus.CONFLICTED
            raise StateConflictError(self.session_id, [text(key) for key in reply[1]])
        self.status = TransactionStatus.COMMITTED

    def rollback(self) -> None:
        """Discard the buffered writes (Redis was never touched) and close the transaction.

        A no-op after a rollback or a conflict, so ``except: tx.rollback()`` is safe; an error
        after a commit, whose writes are in place.
        """
        if self.status is TransactionStatus.COMMITTED:
            raise TransactionClosedError(self.session_id, self.status.value)
        if self.status is TransactionStatus.OPEN:
            self.status = TransactionStatus.ROLLED_BACK
        self._writes.clear()
