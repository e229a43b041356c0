"""/api/orchestrator/...: the spec's REST contract."""

from __future__ import annotations

import re

from flask import Blueprint, jsonify, request

from api import schemas
from api.auth import principal
from api.body import json_body, query_args
from api.errors import ApiError
from api.operations import (
    BODY,
    BY_ID,
    LOCATION,
    SESSION_ID,
    STORE,
    Operation,
    Param,
    Schema,
    ok,
)
from api.routes import services
from orchestrator.core.models import (
    InputAnswer,
    OrchestrateRequest,
    SessionQuery,
    SessionSnapshot,
)
from orchestrator.engine.session_state import writer

blueprint = Blueprint("orchestrator", __name__, url_prefix="/api/orchestrator")


def visible_user(asked: str | None) -> str | None:
    """The userId filter a listing may use: a user token lists only its own sessions (asking
    for someone else's finds none, as if they did not exist)."""
    caller = principal()
    if caller.is_admin:
        return asked
    return caller.user_id if asked in (None, caller.user_id) else f"{caller.user_id}\x00other"


@blueprint.post("/orchestrate")
def orchestrate():
    """Start a session: returns 202 with the session snapshot (status ``executing``)."""
    request_model = OrchestrateRequest.model_validate(json_body())
    caller = principal()
    if not caller.is_admin:  # a user's sessions are its own: userId is the token's user id
        if request_model.user_id not in (None, caller.user_id):
            raise ApiError(
                422,
                "validation_error",
                f"body.userId must be your own user id ({caller.user_id!r}) or left out; "
                "only admin tokens submit for other users",
                {"errors": [{"location": "body.userId", "message": "not your user id",
                             "type": "value_error"}]},
            )  # fmt: skip
        request_model.user_id = caller.user_id
    key = idempotency_key()
    replayed = False
    if key is None:
        snapshot = services().engine.submit(request_model)
    else:
        snapshot, replayed = services().engine.submit_once(request_model, key, caller.user_id)
    response = jsonify(snapshot.to_json_dict())
    response.status_code = 200 if replayed else 202
    response.headers["Location"] = f"/api/orchestrator/sessions/{snapshot.session_id}"
    response.headers["Idempotent-Replayed"] = "true" if replayed else "false"
    return response


IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]([\x20-\x7e]{0,253}[\x21-\x7e])?")


def idempotency_key() -> str | None:
    """The Idempotency-Key header: 1-255 printable ASCII characters, no space at either end;
    None when absent."""
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return None
    if IDEMPOTENCY_KEY.fullmatch(raw) is None:
        raise ApiError(
            422,
            "validation_error",
            "the Idempotency-Key header must be 1-255 printable ASCII characters without "
            "leading or trailing spaces (a UUID is a good key)",
            {"errors": [{"location": "header.Idempotency-Key", "message": "malformed key",
                         "type": "value_error"}]},
        )  # fmt: skip
    return raw


@blueprint.get("/sessions/<session_id>")
def get_session(session_id: str):
    return jsonify(services().engine.snapshot(session_id).to_json_dict())


@blueprint.post("/sessions/<session_id>/cancel")
def cancel_session(session_id: str):
    """Stop a session: steps not started never start, running ones are revoked."""
    return jsonify(services().engine.cancel(session_id).to_json_dict())


@blueprint.post("/sessions/<session_id>/retry")
def retry_session(session_id: str):
    """Run a failed or cancelled session's failed, skipped and cancelled steps again, in the
    same session: completed steps keep their results and cost."""
    return jsonify(services().engine.retry(session_id).to_json_dict())


@blueprint.post("/sessions/<session_id>/input")
def provide_input(session_id: str):
    """Answer a step waiting for operator input: {"stepId": ..., "value": ...}."""
    answer = InputAnswer.model_validate(json_body())
    snapshot = services().engine.provide_input(session_id, answer.step_id, answer.value)
    return jsonify(snapshot.to_json_dict())


@blueprint.get("/sessions/<session_id>/deliveries")
def session_deliveries(session_id: str):
    """The session's webhook (callbackUrl) deliveries: every attempt and what is pending."""
    return jsonify(services().engine.webhooks.deliveries(session_id))


@blueprint.get("/sessions")
def list_sessions():
    """Sessions newest first: ?userId=&status=&limit=(1-200, default 50)&cursor=."""
    query = query_args(SessionQuery)
    sessions, next_cursor = services().engine.list_sessions(
        user_id=visible_user(query.user_id),
        status=query.status,
        limit=query.limit,
        cursor=query.cursor,
    )
    return jsonify(
        {
            "sessions": [s.to_json_dict() for s in sessions],
            "count": len(sessions),
            "nextCursor": next_cursor,
        }
    )


@blueprint.patch("/sessions/<session_id>/context")
def update_context(session_id: str):
    """Merge a JSON object into the session's shared context; later steps see it."""
    state = services().engine.update_context(
        session_id, json_body(), who=writer(principal().user_id)
    )
    return jsonify({"sessionId": session_id, "sharedState": state})


REPLAYED: dict[str, Schema] = {
    "Idempotent-Replayed": {
        "type": "string",
        "enum": ["true", "false"],
        "description": "whether this answer is the session an earlier request with the same "
        "Idempotency-Key made (always false without a key)",
    }
}

CONTEXT_BODY: Schema = {
    "type": "object",
    "description": "keys to merge into the session's shared context (any JSON values)",
    "propertyNames": {"pattern": r"^[A-Za-z0-9_.:-]{1,128}$"},
    "additionalProperties": True,
}

OPERATIONS = (
    Operation(
        "post",
        "/api/orchestrator/orchestrate",
        "orchestrator.orchestrate",
        "Start a session from a goal (or an explicit plan)",
        "sessions",
        {
            202: ok(SessionSnapshot, "the session, started", headers={**LOCATION, **REPLAYED}),
            200: ok(
                SessionSnapshot,
                "the session an earlier request with this Idempotency-Key and body created, "
                "as it is now",
                headers={**LOCATION, **REPLAYED},
            ),
        },
        params=(
            Param(
                "Idempotency-Key",
                "header",
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": r"^[\x21-\x7e]([\x20-\x7e]{0,253}[\x21-\x7e])?$",
                },
                "a key unique to this submit (a UUID): retries with the same key and body get "
                "the first session back (200) for MEOWSTIK_IDEMPOTENCY_TTL_S; another body "
                "with the key is a 422. Keys are per user.",
            ),
        ),  # fmt: skip
        body=OrchestrateRequest,
        errors=(*BODY, 409, *STORE),
    ),
    Operation(
        "get",
        "/api/orchestrator/sessions",
        "orchestrator.list_sessions",
        "List sessions, newest first",
        "sessions",
        {200: ok(schemas.SessionList)},
        query=SessionQuery,
        errors=(422, *STORE),
    ),
    Operation(
        "get",
        "/api/orchestrator/sessions/<session_id>",
        "orchestrator.get_session",
        "A session's snapshot: status, plan, steps, results, errors",
        "sessions",
        {200: ok(SessionSnapshot)},
        params=(SESSION_ID,),
        errors=(*BY_ID, *STORE),
    ),
    Operation(
        "get",
        "/api/orchestrator/sessions/<session_id>/deliveries",
        "orchestrator.session_deliveries",
        "The session's webhook deliveries: each attempt, and what is still to be tried",
        "sessions",
        {200: ok(schemas.Deliveries)},
        params=(SESSION_ID,),
        errors=(*BY_ID, *STORE),
    ),
    Operation(
        "post",
        "/api/orchestrator/sessions/<session_id>/cancel",
        "orchestrator.cancel_session",
        "Cancel a session: nothing more starts, running steps are revoked",
        "sessions",
        {200: ok(SessionSnapshot)},
        params=(SESSION_ID,),
        errors=(*BY_ID, 409, *STORE),
    ),
    Operation(
        "post",
        "/api/orchestrator/sessions/<session_id>/retry",
        "orchestrator.retry_session",
        "Retry a failed or cancelled session in place: its failed, skipped and cancelled steps "
        "run again, completed ones keep their results",
        "sessions",
        {200: ok(SessionSnapshot)},
        params=(SESSION_ID,),
        errors=(*BY_ID, 409, *STORE),
    ),
    Operation(
        "post",
        "/api/orchestrator/sessions/<session_id>/input",
        "orchestrator.provide_input",
        "Answer a step waiting for operator input",
        "sessions",
        {200: ok(SessionSnapshot)},
        params=(SESSION_ID,),
        body=InputAnswer,
        errors=(*BY_ID, 409, *BODY, *STORE),
    ),
    Operation(
        "patch",
        "/api/orchestrator/sessions/<session_id>/context",
        "orchestrator.update_context",
        "Merge values into the shared context later steps receive",
        "sessions",
        {200: ok(schemas.ContextUpdate)},
        params=(SESSION_ID,),
        body=CONTEXT_BODY,
        errors=(*BY_ID, 409, *BODY, *STORE),
    ),
)
