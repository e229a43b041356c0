"""``step_input.state``: the session's State Manager in an agent's hands, bound to its session
and agent. Writes take effect at once (not when the step ends), are versioned and logged with
the agent as their writer, are visible to steps that start later, and survive the step failing
afterwards.

    state.get(key) / state.set(key, value, type="shared"|"temporary", ttl_s=None)
    state.delete(key) / state.entries()
    state.private.get(...) / .set(...) / .delete(...) / .entries()   this agent's own state
    with state.lock("name", ttl_s=30, wait_s=10): ...             a holder that dies releases
    with state.transaction() as tx: tx.set("n", tx.get("n", 0) + 1)  all or nothing; a
        conflict raises StateConflictError, which a retry (or the agent's own loop) re-runs
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from orchestrator.core.state_values import StateType
from orchestrator.store.state import StateManager
from orchestrator.store.transactions import Transaction

DEFAULT_LOCK_TTL_S = 30.0
DEFAULT_LOCK_WAIT_S = 10.0


class PrivateState:
    """The agent's own entries in this session: no other agent reads them."""

    def __init__(self, manager: StateManager, session_id: str, agent_id: str) -> None:
        self._manager, self._session_id, self._agent_id = manager, session_id, agent_id
        self._who = f"agent:{agent_id}"

    def get(self, key: str, default: Any = None) -> Any:
        """This agent's private value of ``key``, or ``default`` (one round trip)."""
        _version, raw = self._manager.version(
            self._session_id, key, type=StateType.PRIVATE, agent_id=self._agent_id
        )
        return default if raw is None else json.loads(raw)

    def set(self, key: str, value: Any) -> int:
        """Store ``value`` (JSON); returns its new version."""
        return self._manager.set(
            self._session_id, key, value, type=StateType.PRIVATE, agent_id=self._agent_id,
            who=self._who, source="agent",
        )  # fmt: skip

    def delete(self, key: str) -> bool:
        return self._manager.delete(
            self._session_id, key, type=StateType.PRIVATE, agent_id=self._agent_id,
            who=self._who, source="agent",
        )  # fmt: skip

    def entries(self) -> dict[str, Any]:
        """Every private entry of this agent, by key (values)."""
        scopes = self._manager.scopes(self._session_id, agent_ids=[self._agent_id])
        return {k: e.value for k, e in scopes["private"].get(self._agent_id, {}).items()}


class AgentState:
    """The session's state as one agent sees it (see the module docstring)."""

    def __init__(self, manager: StateManager, session_id: str, agent_id: str) -> None:
        self._manager, self._session_id, self._agent_id = manager, session_id, agent_id
        self._who = f"agent:{agent_id}"
        self._private = PrivateState(manager, session_id, agent_id)

    @property
    def private(self) -> PrivateState:
        """This agent's own entries in the session."""
        return self._private

    def get(self, key: str, default: Any = None) -> Any:
        """The value this agent sees: its private entry, else a live temporary one, else the
        shared one; ``default`` when none holds ``key``."""
        return self._manager.get(self._session_id, key, agent_id=self._agent_id, default=default)

    def set(self, key: str, value: Any, type: str = "shared", ttl_s: float | None = None) -> int:
        """Write ``value`` (JSON) to shared state, or temporary state with ``ttl_s``; returns
        the entry's new version. Raises StateValidationError (a bad key, type, TTL or value)."""
        return self._manager.set(
            self._session_id, key, value, type=type, ttl_s=ttl_s, who=self._who,
            source="agent",
        )  # fmt: skip

    def delete(self, key: str, type: str = "shared") -> bool:
        """Remove ``key`` from shared (or temporary) state; True if it was there."""
        return self._manager.delete(self._session_id, key, type=type, who=self._who, source="agent")

    def entries(self) -> dict[str, Any]:
        """Every value this agent sees, by key (same precedence as ``get``)."""
        visible = self._manager.entries(self._session_id, agent_id=self._agent_id)
        return {key: entry.value for key, entry in visible.items()}

    @contextmanager
    def lock(
        self, name: str, ttl_s: float = DEFAULT_LOCK_TTL_S, wait_s: float = DEFAULT_LOCK_WAIT_S
    ) -> Iterator[None]:
        """Hold the session lock ``name`` for the block. A holder that dies frees it after
        ``ttl_s``. Raises LockTimeoutError after ``wait_s`` (retryable), LockLostError if the
        block outlasted ``ttl_s``."""
        with self._manager.locked(self._session_id, name, ttl_s=ttl_s, blocking_timeout_s=wait_s):
            yield

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Read with ``tx.get`` (versions recorded), write with ``tx.set``/``tx.delete``; the
        writes commit together when the block ends, only if nothing read changed meanwhile
        (StateConflictError otherwise, nothing written). An exception in the block discards
        them."""
        tx = self._manager.begin(self._session_id, who=self._who, source="agent")
        try:
            yield tx
        except BaseException:
            tx.rollback()
            raise
        tx.commit()
