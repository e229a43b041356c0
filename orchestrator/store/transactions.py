"""Optimistic transactions over a session's state (the spec's beginTransaction,
addToTransaction, commitTransaction).

A Transaction (from ``StateManager.begin``) reads through, recording the version of every entry
it read, and buffers its writes; commit applies them all at once in state_write.lua only if none
of the entries it read changed version meanwhile, and otherwise writes nothing and raises
StateConflictError naming the keys. Nothing is locked meanwhile, so a transaction never blocks
others or outlives a dead client; the loser of a race retries (StateConflictError is retryable:
an agent that lets it out of its run is retried with backoff).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from orchestrator.core.errors import StateConflictError, TransactionClosedError
from orchestrator.core.state_values import StateType, check_key, check_scope, state_field

if TYPE_CHECKING:
    from orchestrator.store.state import Change, StateManager


class TransactionStatus(StrEnum):
    OPEN = "open"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled back"
    CONFLICTED = "rejected by a conflict"


class Transaction:
    """An optimistic transaction over one session's state.

    ``get`` reads through and remembers the version it saw (0 for an entry never written);
    ``set`` and ``delete`` only buffer. ``commit`` applies every write at once if each entry read
    still has the version seen, and otherwise writes nothing. Versions only grow, so an entry
    changed and changed back is a conflict too.
    """

    def __init__(self, manager: StateManager, session_id: str, *, who: str, source: str) -> None:
        self.session_id, self.status = session_id, TransactionStatus.OPEN
        self._manager, self._who, self._source = manager, who, source
        self._reads: dict[str, tuple[int, str | None]] = {}  # field -> (version, raw)
        self._names: dict[str, str] = {}  # field -> key, for errors
        self._writes: dict[str, Change] = {}
        self.versions: dict[str, int] = {}  # key -> version after a commit

    def _check_open(self) -> None:
        if self.status is not TransactionStatus.OPEN:
            raise TransactionClosedError(self.session_id, self.status.value)

    def get(
        self,
        key: str,
        default: Any = None,
        *,
        type: StateType | str = StateType.SHARED,
        agent_id: str | None = None,
    ) -> Any:
        """``key`` of one scope (shared by default) as this transaction sees it, its own writes
        included, or ``default``. The first read of an entry is the one commit checks."""
        self._check_open()
        field = state_field(check_scope(type, agent_id), check_key(key), agent_id)
        if field in self._writes:
            raw = self._writes[field].raw
        else:
            if field not in self._reads:
                version, found = self._manager.version(
                    self.session_id, key, type=type, agent_id=agent_id
                )
                self._reads[field] = (version, None if found is None else _text(found))
                self._names[field] = key
            raw = self._reads[field][1]
        return default if raw is None else json.loads(raw)

    def version_of(
        self, key: str, *, type: StateType | str = StateType.SHARED, agent_id: str | None = None
    ) -> int:
        """The version of ``key`` this transaction read (reading it first if it has not)."""
        self.get(key, type=type, agent_id=agent_id)
        return self._reads[state_field(StateType(type), key, agent_id)][0]

    def expect(
        self,
        key: str,
        version: int,
        *,
        type: StateType | str = StateType.SHARED,
        agent_id: str | None = None,
    ) -> None:
        """Require ``key`` to still have ``version`` at commit, as if it had been read then."""
        self._check_open()
        field = state_field(check_scope(type, agent_id), check_key(key), agent_id)
        self._reads[field] = (version, None)
        self._names[field] = key

    def set(
        self,
        key: str,
        value: Any,
        *,
        type: StateType | str = StateType.SHARED,
        agent_id: str | None = None,
        ttl_s: float | None = None,
    ) -> None:
        """Buffer setting ``key`` to ``value`` (JSON); validated now, written at commit."""
        self._check_open()
        change = self._manager.change(type, key, value, agent_id=agent_id, ttl_s=ttl_s)
        self._writes[change.field] = change
        self._names[change.field] = key

    def delete(
        self, key: str, *, type: StateType | str = StateType.SHARED, agent_id: str | None = None
    ) -> None:
        """Buffer removing ``key`` from one scope (shared by default)."""
        self._check_open()
        change = self._manager.change(type, key, delete=True, agent_id=agent_id)
        self._writes[change.field] = change
        self._names[change.field] = key

    def commit(self) -> dict[str, int]:
        """Apply every buffered write atomically, if no entry read since changed. Returns the
        new versions by key.

        Raises StateConflictError naming the changed keys, having written nothing, or
        TransactionClosedError if the transaction was already committed, rolled back or rejected.
        """
        self._check_open()
        expect = {field: version for field, (version, _raw) in self._reads.items()}
        try:
            versions = self._manager.write(
                self.session_id,
                list(self._writes.values()),
                expect=expect,
                who=self._who,
                source=self._source,
                conflict_keys=self._names,
            )
        except StateConflictError:
            self.status = TransactionStatus.CONFLICTED
            raise
        self.status = TransactionStatus.COMMITTED
        self.versions = {self._names[field]: version for field, version in versions.items()}
        return self.versions

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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
