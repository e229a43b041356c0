"""/api/orchestrator/sessions/<id>/steps/<step id>/transcript: the model calls and tool calls a
step's durable tool loops recorded, per agent that ran it (orchestrator/core/transcripts.py).
The same owner rules as the session (api/auth.py answers 404 for another user's session)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from api.operations import BY_ID, SESSION_ID, STORE, Operation, ok, path_param
from api.routes import services
from orchestrator.core.transcripts import StepTranscript

blueprint = Blueprint("transcripts", __name__, url_prefix="/api/orchestrator/sessions/<session_id>")
STEP_ID = path_param("step_id", "the step's id within the session")


@blueprint.get("/steps/<step_id>/transcript")
def step_transcript(session_id: str, step_id: str):
    """Every model call (its reply, tool calls, tokens; the first one's prompt) and tool call
    (arguments, result) of the step, in order; pending calls that began without a result."""
    transcript = services().transcripts.step(session_id, step_id)
    return jsonify(transcript.model_dump(mode="json", by_alias=True, exclude_none=True))


OPERATIONS = (
    Operation(
        "get",
        "/api/orchestrator/sessions/<session_id>/steps/<step_id>/transcript",
        "transcripts.step_transcript",
        "A step's transcript: its model calls and tool calls, in order, per agent",
        "logs",
        {200: ok(StepTranscript)},
        params=(SESSION_ID, STEP_ID),
        errors=(*BY_ID, *STORE),
    ),
)
