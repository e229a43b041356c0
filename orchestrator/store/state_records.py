"""The State Manager's records (pure data): a visible entry with its version, a checked change
to apply, the version record kept per entry in ``Keys.state_meta``, and the log entry of a
change (the SSE event ``state.updated``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.errors import StateKeyError
from orchestrator.core.logentry import LogEntry
from orchestrator.core.models import AGENT_ID_PATTERN
from orchestrator.core.state_values import AGENT_RULE, StateType, state_field


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class StateEntry:
    """A visible state value, the scope it came from, and for temporary entries when it expires;
    also its version and last writer (not compared: two reads of one value are equal)."""

    value: Any
    type: StateType
    expires_at_ms: int | None = None
    version: int = field(default=0, compare=False)
    updated_at_ms: int | None = field(default=None, compare=False)
    updated_by: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Change:
    """One buffered write (``raw`` is the value's JSON) or delete (``raw`` is None)."""

    type: StateType
    key: str
    raw: str | None
    agent_id: str | None = None
    ttl_ms: int = 0

    @property
    def field(self) -> str:
        return state_field(self.type, self.key, self.agent_id)


@dataclass(frozen=True)
class Meta:
    version: int = 0
    updated_at_ms: int | None = None
    updated_by: str | None = None

    @classmethod
    def parse(cls, raw: Any) -> Meta:
        if raw is None:
            return cls()
        version, at, by = _text(raw).split("|", 2)
        return cls(int(version), int(at), by)


def check_agent(agent_id: object) -> str:
    if not isinstance(agent_id, str) or not re.fullmatch(AGENT_ID_PATTERN, agent_id):
        raise StateKeyError("agent id", agent_id, AGENT_RULE)
    return agent_id


def log_entry(session_id: str, change: Change, version: int, who: str, source: str) -> LogEntry:
    """The log entry of one state change (also the SSE event ``state.updated``)."""
    data: dict[str, Any] = {
        "key": change.key,
        "type": change.type.value,
        "op": "delete" if change.raw is None else "set",
        "version": version,
        "by": who,
    }
    if change.agent_id:
        data["agentId"] = change.agent_id
    if change.ttl_ms:
        data["ttlS"] = change.ttl_ms / 1000
    agent = who.removeprefix("agent:") if who.startswith("agent:") else None
    return LogEntry(
        "info", source, "State updated", session_id=session_id, agent_id=agent, data=data
    )
