"""/api/orchestrator/sessions/<id>/state: the session's State Manager over REST. The same owner
rules as the session (api/auth.py answers 404 for another user's session before these run)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from api.auth import principal
from api.body import json_body, query_args
from api.operations import BODY, BY_ID, SESSION_ID, STORE, Operation, Reply, ok, path_param
from api.routes import services
from orchestrator.core.models import AgentId, RequestModel
from orchestrator.core.state_models import (
    Scope,
    SessionStateOut,
    StateCommitted,
    StateEntryOne,
    StateTransaction,
    StateWrite,
    StateWritten,
)
from orchestrator.engine.session_state import writer

blueprint = Blueprint("state", __name__, url_prefix="/api/orchestrator/sessions/<session_id>")


class EntryQuery(RequestModel):
    """Query of GET .../state/<key>: ``agentId`` includes that agent's private entry."""

    agent_id: AgentId | None = None


class DeleteQuery(RequestModel):
    """Query of DELETE .../state/<key>: the scope to delete from (shared by default)."""

    type: Scope = "shared"
    agent_id: AgentId | None = None


def _who() -> str:
    return writer(principal().user_id)


@blueprint.get("/state")
def get_state(session_id: str):
    """Every entry: shared, temporary (with expiresAt), private by agent id."""
    return jsonify(services().engine.state.view(session_id).model_dump(by_alias=True))


@blueprint.get("/state/<key>")
def get_entry(session_id: str, key: str):
    """The entry the session sees under ``key`` (404 when absent or expired)."""
    query = query_args(EntryQuery)
    entry = services().engine.state.entry(session_id, key, agent_id=query.agent_id)
    return jsonify(entry.model_dump(by_alias=True))


@blueprint.put("/state/<key>")
def put_entry(session_id: str, key: str):
    """Write one entry: {"value", "type", "ttlSeconds", "ifVersion", "agentId"}."""
    body = StateWrite.model_validate(json_body())
    written = services().engine.state.put(session_id, key, body, who=_who())
    return jsonify(written.model_dump(by_alias=True))


@blueprint.delete("/state/<key>")
def delete_entry(session_id: str, key: str):
    """Remove one entry (204 whether or not it was there)."""
    query = query_args(DeleteQuery)
    services().engine.state.delete(
        session_id, key, type=query.type, agent_id=query.agent_id, who=_who()
    )
    return "", 204


@blueprint.post("/state/transactions")
def transaction(session_id: str):
    """{"set": [...], "delete": [...], "expect": {key: version}}: all or nothing."""
    body = StateTransaction.model_validate(json_body())
    committed = services().engine.state.transact(session_id, body, who=_who())
    return jsonify(committed.model_dump(by_alias=True))


KEY = path_param("key", "the state key (1-128 letters, digits, '_', '.', ':' or '-')")
STATE = "/api/orchestrator/sessions/<session_id>/state"

OPERATIONS = (
    Operation(
        "get", STATE, "state.get_state",
        "A session's state: shared, temporary and private entries with their versions",
        "state", {200: ok(SessionStateOut)}, params=(SESSION_ID,), errors=(*BY_ID, *STORE),
    ),
    Operation(
        "get", f"{STATE}/<key>", "state.get_entry",
        "One state entry as the session (or ?agentId=) sees it",
        "state", {200: ok(StateEntryOne)}, params=(SESSION_ID, KEY), query=EntryQuery,
        errors=(*BY_ID, 422, *STORE),
    ),
    Operation(
        "put", f"{STATE}/<key>", "state.put_entry",
        "Write one state entry (409 when ifVersion no longer holds)",
        "state", {200: ok(StateWritten)}, params=(SESSION_ID, KEY), body=StateWrite,
        errors=(*BY_ID, 409, *BODY, *STORE),
    ),
    Operation(
        "delete", f"{STATE}/<key>", "state.delete_entry",
        "Delete one state entry",
        "state", {204: Reply("deleted (or was not there)")}, params=(SESSION_ID, KEY),
        query=DeleteQuery, errors=(*BY_ID, 409, 422, *STORE),
    ),
    Operation(
        "post", f"{STATE}/transactions", "state.transaction",
        "Apply state writes and deletes all or nothing, if expected versions hold",
        "state", {200: ok(StateCommitted)}, params=(SESSION_ID,), body=StateTransaction,
        errors=(*BY_ID, 409, *BODY, *STORE),
    ),
)  # fmt: skip
