"""The State Manager over REST: request bodies and the JSON shapes of entries (pure).

``PUT .../sessions/<id>/state/<key>`` takes StateWrite; ``POST .../state/transactions`` takes
StateTransaction. Unknown fields are refused (422) like every request body.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from orchestrator.core.models import AgentId, CamelModel, RequestModel
from orchestrator.core.state_values import KEY_PATTERN

StateKey = Annotated[str, StringConstraints(pattern=f"^{KEY_PATTERN}$")]
Scope = Literal["shared", "temporary", "private"]
MAX_TTL_S = 366 * 24 * 3600
MAX_CHANGES = 100


class StateWrite(RequestModel):
    """Body of PUT .../state/<key>: ``value`` (any JSON) in ``type`` (shared by default;
    temporary needs ``ttlSeconds``; private needs ``agentId``), only if the entry still has
    version ``ifVersion`` when given (0: never written), else 409."""

    value: Any
    type: Scope = "shared"
    ttl_seconds: float | None = Field(default=None, gt=0, le=MAX_TTL_S)
    if_version: int | None = Field(default=None, ge=0)
    agent_id: AgentId | None = None


class StateSet(RequestModel):
    """One write of a transaction."""

    key: StateKey
    value: Any
    type: Scope = "shared"
    ttl_seconds: float | None = Field(default=None, gt=0, le=MAX_TTL_S)
    agent_id: AgentId | None = None


class StateDelete(RequestModel):
    """One delete of a transaction (a bare key deletes the shared entry)."""

    key: StateKey
    type: Scope = "shared"
    agent_id: AgentId | None = None


class StateTransaction(RequestModel):
    """Body of POST .../state/transactions: every ``set`` and ``delete`` applied together, only
    if each key of ``expect`` still has the version given (0: never written), else 409 naming
    the keys that changed. ``expect`` names the entry the request writes under that key (its
    type), else the shared one."""

    sets: list[StateSet] = Field(default_factory=list, alias="set", max_length=MAX_CHANGES)
    deletes: list[StateKey | StateDelete] = Field(
        default_factory=list, alias="delete", max_length=MAX_CHANGES
    )
    expect: dict[StateKey, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)


class StateEntryOut(CamelModel):
    """One entry as the API shows it."""

    value: Any
    version: int
    updated_at: str | None = None
    updated_by: str | None = None
    expires_at: str | None = None


class StateEntryOne(StateEntryOut):
    """GET .../state/<key>: the entry the session (or ``agentId``) sees under the key."""

    session_id: str
    key: str
    type: Scope
    agent_id: str | None = None


class SessionStateOut(CamelModel):
    """GET .../state: every scope apart; private state by agent id."""

    session_id: str
    shared: dict[str, StateEntryOut]
    temporary: dict[str, StateEntryOut]
    private: dict[str, dict[str, StateEntryOut]]


class StateWritten(CamelModel):
    """PUT's answer: the entry's new version."""

    session_id: str
    key: str
    type: Scope
    version: int


class StateCommitted(CamelModel):
    """A transaction's answer: the new version of every key it changed."""

    session_id: str
    committed: bool
    versions: dict[str, int]
