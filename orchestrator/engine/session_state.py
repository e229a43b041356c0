"""The session's state over REST (``/api/orchestrator/sessions/<id>/state``): the views the
routes answer with, and writes that carry who made them. The State Manager does the work; the
same rules hold as for agents (keys, sizes, types, TTLs, versions)."""

from __future__ import annotations

from orchestrator.core.errors import StateNotFoundError
from orchestrator.core.logentry import iso_from_ms
from orchestrator.core.state_models import (
    SessionStateOut,
    StateCommitted,
    StateDelete,
    StateEntryOne,
    StateEntryOut,
    StateTransaction,
    StateWrite,
    StateWritten,
)
from orchestrator.core.state_values import StateType, check_key, state_field
from orchestrator.engine.context import EngineContext
from orchestrator.engine.queries import Queries
from orchestrator.store.state import Change, StateEntry


def entry_out(entry: StateEntry) -> StateEntryOut:
    return StateEntryOut(
        value=entry.value,
        version=entry.version,
        updated_at=iso_from_ms(entry.updated_at_ms),
        updated_by=entry.updated_by,
        expires_at=iso_from_ms(entry.expires_at_ms),
    )


class SessionState:
    def __init__(self, context: EngineContext, queries: Queries) -> None:
        self.state = context.state
        self.queries = queries

    def view(self, session_id: str) -> SessionStateOut:
        """Every entry of the session, scope by scope. Raises SessionNotFoundError (404)."""
        self.queries.progress(session_id)
        scopes = self.state.scopes(session_id)
        return SessionStateOut(
            session_id=session_id,
            shared={key: entry_out(e) for key, e in scopes["shared"].items()},
            temporary={key: entry_out(e) for key, e in scopes["temporary"].items()},
            private={
                agent: {key: entry_out(e) for key, e in entries.items()}
                for agent, entries in scopes["private"].items()
            },
        )

    def entry(self, session_id: str, key: str, *, agent_id: str | None = None) -> StateEntryOne:
        """The entry ``key`` the session (or ``agent_id``) sees. Raises SessionNotFoundError,
        StateNotFoundError (404), StateKeyError (422)."""
        check_key(key)
        self.queries.progress(session_id)
        found = self.state.entry(session_id, key, agent_id=agent_id)
        if found is None:
            raise StateNotFoundError(session_id, key)
        out = entry_out(found)
        return StateEntryOne(
            session_id=session_id,
            key=key,
            type=found.type.value,
            agent_id=agent_id if found.type is StateType.PRIVATE else None,
            **out.model_dump(),
        )

    def put(self, session_id: str, key: str, body: StateWrite, *, who: str) -> StateWritten:
        """Write one entry. Raises StateValidationError (422), StateConflictError (409) when
        ``ifVersion`` no longer holds, SessionNotFoundError (404), SessionFinishedError (409)."""
        version = self.state.set(
            session_id,
            check_key(key),
            body.value,
            type=body.type,
            agent_id=body.agent_id,
            ttl_s=body.ttl_seconds,
            if_version=body.if_version,
            who=who,
        )
        return StateWritten(session_id=session_id, key=key, type=body.type, version=version)

    def delete(
        self, session_id: str, key: str, *, type: str, agent_id: str | None, who: str
    ) -> bool:
        """Remove one entry; True if it was there."""
        self.queries.progress(session_id)
        return self.state.delete(session_id, key, type=type, agent_id=agent_id, who=who)

    def transact(self, session_id: str, body: StateTransaction, *, who: str) -> StateCommitted:
        """Apply a transaction's writes and deletes all or nothing (see StateTransaction)."""
        changes: list[Change] = [
            self.state.change(s.type, s.key, s.value, agent_id=s.agent_id, ttl_s=s.ttl_seconds)
            for s in body.sets
        ]
        for item in body.deletes:
            d = item if isinstance(item, StateDelete) else StateDelete(key=item)
            changes.append(self.state.change(d.type, d.key, delete=True, agent_id=d.agent_id))
        written = {c.key: c.field for c in changes}
        expect = {
            written.get(key, state_field(StateType.SHARED, key)): version
            for key, version in body.expect.items()
        }
        names = {field: key for key, field in written.items()}
        names.update({field: key for key, field in zip(body.expect, expect, strict=True)})
        versions = self.state.write(
            session_id, changes, expect=expect, who=who, conflict_keys=names
        )
        return StateCommitted(
            session_id=session_id,
            committed=True,
            versions={names.get(field, field): v for field, v in versions.items()},
        )


def writer(user_id: str | None) -> str:
    """The ``updatedBy`` of a write made over REST."""
    return f"user:{user_id}" if user_id else "operator"


__all__ = ["SessionState", "entry_out", "writer"]
