"""Session state in Redis: shared, private and temporary entries, versioned, with locks and
transactions. The spec's State Manager; agents reach it as ``step_input.state``, people over
``/api/orchestrator/sessions/<id>/state``.

- shared: one hash per session (``Keys.shared_state``): what every step receives as its
  ``sharedState``, what step completions write their state updates to and what a context PATCH
  merges into;
- private: one hash per agent (``Keys.private_state``), agents listed in ``private_state_index``;
- temporary: one string per entry that Redis expires (``Keys.temporary_state``), listed in
  ``temporary_state_index`` scored by expiry time (ms) and pruned as it is read.

Every write and delete goes through one Lua script (state_write.lua) that bumps the entry's
version in ``Keys.state_meta`` (with when and by whom) and can refuse the whole change when an
expected version no longer holds: that is how a PUT's ``ifVersion`` and a transaction's reads
are checked. Versions only grow, so a value changed and changed back is still a change.

A key may exist in several scopes; a read sees the most specific one, as a local variable shadows
a global: the reading agent's private entry, else an unexpired temporary one, else the shared one.
Values are JSON, stored as their compact encoding and size-limited. Locks are redis-py Locks
(token-owned, with a TTL, so a dead holder's lock frees itself). Transactions are in
transactions.py; key and value checks in orchestrator/core/state_values.py; the errors in
orchestrator/core/errors/state.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis.exceptions import LockNotOwnedError
from redis.lock import Lock

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import (
    LockLostError,
    LockTimeoutError,
    SessionFinishedError,
    SessionNotFoundError,
    StateConflictError,
)
from orchestrator.core.state_values import (
    StateType,
    check_key,
    check_scope,
    check_ttl_ms,
    encode,
    positive_ms,
    state_field,
)

__all__ = ["Change", "StateEntry", "StateManager", "StateType", "Transaction"]
from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.logbook import Logbook
from orchestrator.store.runner import ScriptRunner
from orchestrator.store.scripts import text
from orchestrator.store.state_records import Change, Meta, StateEntry, check_agent, log_entry

DEFAULT_MAX_VALUE_BYTES = 256 * 1024


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

    ``who`` on a write is recorded as the entry's ``updatedBy`` and in the log entry every
    change writes ("agent:<id>", "user:<id>", "operator", ...).
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        clock: Clock | Callable[[], float] = SYSTEM_CLOCK,
        logbook: Logbook | None = None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    ) -> None:
        self._client, self._keys = client, keys
        self._clock = clock if isinstance(clock, Clock) else Clock(clock)
        self._logbook = logbook or Logbook(client, keys)
        self._run = ScriptRunner(client, self._logbook)
        self.max_value_bytes = max_value_bytes

    # --- writes -----------------------------------------------------------------------------
    def change(
        self,
        type: StateType | str,
        key: str,
        value: Any = None,
        *,
        delete: bool = False,
        agent_id: str | None = None,
        ttl_s: float | None = None,
    ) -> Change:
        """A checked change: the key, the scope's arguments and the value (JSON, within
        ``max_value_bytes``). Raises StateValidationError."""
        scope = check_scope(type, agent_id)
        if agent_id is not None:
            check_agent(agent_id)
        check_key(key)
        if delete:
            return Change(scope, key, None, agent_id)
        ttl_ms = check_ttl_ms(scope, ttl_s)
        return Change(scope, key, encode(key, value, self.max_value_bytes), agent_id, ttl_ms)

    def write(
        self,
        session_id: str,
        changes: Sequence[Change],
        *,
        expect: Mapping[str, int] | None = None,
        who: str = "orchestrator",
        source: str = "orchestrator",
        conflict_keys: Mapping[str, str] | None = None,
    ) -> dict[str, int]:
        """See ``_apply``: the new version of each changed field."""
        return self._apply(
            session_id, changes, expect=expect, who=who, source=source,
            conflict_keys=conflict_keys,
        )[0]  # fmt: skip

    def _apply(
        self,
        session_id: str,
        changes: Sequence[Change],
        *,
        expect: Mapping[str, int] | None = None,
        who: str = "orchestrator",
        source: str = "orchestrator",
        conflict_keys: Mapping[str, str] | None = None,
    ) -> tuple[dict[str, int], dict[str, bool]]:
        """Apply ``changes`` all or nothing, each bumping its entry's version, and log each.

        ``expect`` maps fields (``state_field``) to the versions they must still have (0: never
        written). Returns the version of each field after the call (deleting what is not
        there changes nothing) and whether each entry existed before.

        Raises:
            StateConflictError (409): an expected version changed; nothing was written. It names
                the keys (``conflict_keys`` maps fields to the names to report).
            SessionNotFoundError (404), SessionFinishedError (409): no running session.
        """
        now, k, expect = self._clock.now_ms(), self._keys, dict(expect or {})
        keys = [
            k.session(session_id),
            k.shared_state(session_id),
            k.temporary_state_index(session_id),
            k.private_state_index(session_id),
        ]
        args: list[Any] = [k.prefix, session_id, now, who, len(expect)]
        for name, version in expect.items():
            args += [name, version]
        for change in changes:
            op = "delete" if change.raw is None else "set"
            args += [op, change.field, change.key, change.raw or "", change.ttl_ms]
        reply = self._run("state_write", keys, args)
        code = text(reply[0])
        if code == "ended":
            status = text(reply[1])
            if status == "missing":
                raise SessionNotFoundError(session_id)
            raise SessionFinishedError(session_id, status)
        if code == "conflict":
            names = conflict_keys or {}
            fields = [text(reply[1][i]) for i in range(0, len(reply[1]), 2)]
            raise StateConflictError(session_id, [names.get(f, f) for f in fields])
        flat = reply[1]
        versions = {text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 3)}
        existed = {text(flat[i]): bool(int(flat[i + 2])) for i in range(0, len(flat), 3)}
        made = [c for c in changes if c.raw is not None or existed[c.field]]
        self._log_changes(session_id, made, versions, who, source, now)
        return versions, existed

    def _log_changes(
        self,
        session_id: str,
        changes: Sequence[Change],
        versions: Mapping[str, int],
        who: str,
        source: str,
        now_ms: int,
    ) -> None:
        """One log entry per change, with its new version: the SSE event ``state.updated``."""
        if not changes:
            return
        pipe = self._client.pipeline(transaction=False)
        for change in changes:
            entry = log_entry(session_id, change, versions[change.field], who, source)
            self._logbook.append(pipe, entry, now_ms)
        pipe.execute()

    def set(
        self,
        session_id: str,
        key: str,
        value: Any,
        *,
        type: StateType | str = StateType.SHARED,
        agent_id: str | None = None,
        ttl_s: float | None = None,
        if_version: int | None = None,
        who: str = "orchestrator",
        source: str = "orchestrator",
    ) -> int:
        """Store ``value`` (JSON) under ``key`` in one scope; returns its new version.

        Private state needs ``agent_id``, temporary state ``ttl_s``; the other types refuse them.
        With ``if_version``, only if the entry still has that version (0: never written).
        Raises StateValidationError, StateConflictError (409), or as ``write``.
        """
        change = self.change(type, key, value, agent_id=agent_id, ttl_s=ttl_s)
        expect = {} if if_version is None else {change.field: if_version}
        versions = self.write(
            session_id, [change], expect=expect, who=who, source=source,
            conflict_keys={change.field: key},
        )  # fmt: skip
        return versions[change.field]

    def delete(
        self,
        session_id: str,
        key: str,
        *,
        type: StateType | str = StateType.SHARED,
        agent_id: str | None = None,
        who: str = "orchestrator",
        source: str = "orchestrator",
    ) -> bool:
        """Remove ``key`` from one scope (the others keep theirs); True if it was there."""
        change = self.change(type, key, delete=True, agent_id=agent_id)
        return self._apply(session_id, [change], who=who, source=source)[1][change.field]

    # --- reads ------------------------------------------------------------------------------
    def get(
        self, session_id: str, key: str, *, agent_id: str | None = None, default: Any = None
    ) -> Any:
        """The visible value of ``key``, or ``default`` if no scope holds it.

        Precedence: ``agent_id``'s private entry, else an unexpired temporary entry, else the
        shared entry, read in one MULTI. Pass a sentinel ``default`` to tell JSON null from absent.
        """
        entry = self.entry(session_id, key, agent_id=agent_id)
        return default if entry is None else entry.value

    def entry(self, session_id: str, key: str, *, agent_id: str | None = None) -> StateEntry | None:
        """The visible entry of ``key`` with its version (same precedence as ``get``), or None."""
        check_key(key)
        k = self._keys
        candidates: list[tuple[StateType, str | None]] = []
        if agent_id is not None:
            candidates.append((StateType.PRIVATE, check_agent(agent_id)))
        candidates += [(StateType.TEMPORARY, None), (StateType.SHARED, None)]
        pipe = self._client.pipeline(transaction=True)
        for scope, agent in candidates:
            self._queue_read(pipe, session_id, scope, key, agent)
        pipe.zscore(k.temporary_state_index(session_id), key)
        fields = [state_field(scope, key, agent) for scope, agent in candidates]
        pipe.hmget(k.state_meta(session_id), fields)
        *raws, expiry, metas = pipe.execute()
        for (scope, _agent), raw, meta_raw in zip(candidates, raws, metas, strict=True):
            if raw is not None:
                meta = Meta.parse(meta_raw)
                expires_at = int(expiry) if scope is StateType.TEMPORARY and expiry else None
                return StateEntry(
                    json.loads(raw), scope, expires_at,
                    meta.version, meta.updated_at_ms, meta.updated_by,
                )  # fmt: skip
        return None

    def version(
        self,
        session_id: str,
        key: str,
        *,
        type: StateType | str = StateType.SHARED,
        agent_id: str | None = None,
    ) -> tuple[int, Any]:
        """(version, raw JSON or None) of one scope's entry, read together: what a transaction
        records when it reads."""
        scope = check_scope(type, agent_id)
        field = state_field(scope, check_key(key), agent_id)
        pipe = self._client.pipeline(transaction=True)
        pipe.hget(self._keys.state_meta(session_id), field)
        self._queue_read(pipe, session_id, scope, key, agent_id)
        meta, raw = pipe.execute()
        return Meta.parse(meta).version, raw

    def _queue_read(
        self, pipe: Any, session_id: str, scope: StateType, key: str, agent_id: str | None
    ) -> None:
        k = self._keys
        if scope is StateType.SHARED:
            pipe.hget(k.shared_state(session_id), key)
        elif scope is StateType.PRIVATE:
            pipe.hget(k.private_state(session_id, str(agent_id)), key)
        else:
            pipe.get(k.temporary_state(session_id, key))

    def entries(self, session_id: str, *, agent_id: str | None = None) -> dict[str, StateEntry]:
        """Every entry visible to ``agent_id`` (or to no agent in particular), by key.

        Same precedence as ``get``. Prunes expired members of the temporary index; an entry Redis
        expired since its index score was written is left out.
        """
        view = self.scopes(session_id, agent_ids=[agent_id] if agent_id else [])
        visible = dict(view["shared"])
        visible.update(view["temporary"])
        if agent_id is not None:
            visible.update(view["private"].get(agent_id, {}))
        return visible

    def scopes(self, session_id: str, *, agent_ids: Sequence[str] | None = None) -> dict[str, Any]:
        """Every scope apart: ``{"shared": {key: entry}, "temporary": {key: entry}, "private":
        {agent id: {key: entry}}}``. Private state of ``agent_ids`` (every agent's when None)."""
        k, now = self._keys, self._clock.now_ms()
        index = k.temporary_state_index(session_id)
        pipe = self._client.pipeline(transaction=True)
        pipe.zremrangebyscore(index, "-inf", now)
        pipe.zrangebyscore(index, f"({now}", "+inf", withscores=True)
        pipe.hgetall(k.shared_state(session_id))
        pipe.hgetall(k.state_meta(session_id))
        pipe.smembers(k.private_state_index(session_id))
        _, live, shared, meta_raw, indexed = pipe.execute()
        metas = {text(f): Meta.parse(v) for f, v in meta_raw.items()}
        agents = sorted(text(a) for a in indexed) if agent_ids is None else list(agent_ids)
        temporary = [k.temporary_state(session_id, text(member)) for member, _ in live]
        pipe = self._client.pipeline(transaction=False)
        pipe.mget(temporary) if temporary else None
        for agent in agents:
            pipe.hgetall(k.private_state(session_id, check_agent(agent)))
        replies = pipe.execute()
        raws = replies.pop(0) if temporary else []

        def made(raw: Any, scope: StateType, key: str, agent: str | None = None,
                 expires_at: int | None = None) -> StateEntry:  # fmt: skip
            meta = metas.get(state_field(scope, key, agent), Meta())
            return StateEntry(
                json.loads(raw), scope, expires_at, meta.version, meta.updated_at_ms,
                meta.updated_by,
            )  # fmt: skip

        out: dict[str, Any] = {
            "shared": {
                text(key): made(raw, StateType.SHARED, text(key)) for key, raw in shared.items()
            },
            "temporary": {},
            "private": {},
        }
        for (member, expires_at), raw in zip(live, raws, strict=True):
            if raw is not None:
                key = text(member)
                out["temporary"][key] = made(raw, StateType.TEMPORARY, key, None, int(expires_at))
        for agent, entries in zip(agents, replies, strict=True):
            if entries:
                out["private"][agent] = {
                    text(key): made(raw, StateType.PRIVATE, text(key), agent)
                    for key, raw in entries.items()
                }
        return out

    # --- locks and transactions ---------------------------------------------------------------
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

    def begin(
        self, session_id: str, *, who: str = "orchestrator", source: str = "orchestrator"
    ) -> Transaction:
        """A new optimistic transaction over the session's state (see Transaction)."""
        return Transaction(self, session_id, who=who, source=source)

    def expire_session_state(self, session_id: str, retention_s: float) -> None:
        """Make all of the session's state expire ``retention_s`` from now (for ended sessions).

        Covers the shared hash, every agent's private hash (found via the private index), both
        indexes, the versions, and temporary entries that would otherwise outlive the retention.
        """
        retention_ms, k = positive_ms(retention_s, "retention_s"), self._keys
        agents = self._client.smembers(k.private_state_index(session_id))
        index = k.temporary_state_index(session_id)
        limit = self._clock.now_ms() + retention_ms
        outliving = self._client.zrangebyscore(index, f"({limit}", "+inf")
        pipe = self._client.pipeline(transaction=True)
        for agent_id in agents:
            pipe.pexpire(k.private_state(session_id, text(agent_id)), retention_ms)
        for key in outliving:
            pipe.pexpire(k.temporary_state(session_id, text(key)), retention_ms)
        owned = (k.shared_state(session_id), k.private_state_index(session_id), index)
        for key in (*owned, k.state_meta(session_id)):
            pipe.pexpire(key, retention_ms)
        pipe.execute()


from orchestrator.store.transactions import Transaction  # noqa: E402 - it imports this module
