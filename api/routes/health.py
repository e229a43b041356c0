"""/healthz: the API answers, Redis answers, and Redis can hold the records.

200 ``ok`` when Redis answers and accepts writes and its maxmemory-policy keeps keys
(``noeviction``); with ``warnings`` when an evicting policy is allowed by
MEOWSTIK_REDIS_ALLOW_EVICTION. 503 ``unavailable`` with the Redis error when Redis does not
answer, or with ``problems`` when it answers but cannot hold them: a policy that evicts keys,
out of memory, or refusing writes because it cannot persist (MISCONF). One round trip to Redis
(orchestrator/store/redis_health.py).
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from api import schemas
from api.operations import JSON, Operation, Reply, ok
from api.routes import services
from orchestrator.core.errors import StoreUnavailableError
from orchestrator.core.store_health import HealthNote

blueprint = Blueprint("health", __name__)


def _notes(notes: tuple[HealthNote, ...]) -> list[dict[str, str]]:
    return [{"code": note.code, "message": note.message} for note in notes]


@blueprint.get("/healthz")
def healthz():
    try:
        verdict = services().health.verdict()
    except StoreUnavailableError as exc:  # a 503 in the Health shape, not the Error one
        cause = exc.__cause__ or exc  # the redis-py error says what failed
        response = jsonify({"status": "unavailable", "redis": f"{type(cause).__name__}: {cause}"})
        response.status_code = 503
        return response
    body: dict = {"status": "ok" if verdict.healthy else "unavailable", "redis": verdict.summary}
    if verdict.problems:
        body["problems"] = _notes(verdict.problems)
    if verdict.warnings:
        body["warnings"] = _notes(verdict.warnings)
    response = jsonify(body)
    response.status_code = 200 if verdict.healthy else 503
    return response


OPERATIONS = (
    Operation(
        "get",
        "/healthz",
        "health.healthz",
        "200 when the API and Redis answer and Redis can hold the records (`warnings` name "
        "risks allowed by settings); else 503 with the Redis error or `problems`",
        "health",
        {
            200: ok(schemas.Health),
            503: Reply(
                "Redis does not answer, or cannot hold the records: a maxmemory-policy that "
                "evicts keys, out of memory, or refusing writes (MISCONF)",
                {JSON: schemas.Health},
            ),
        },
        auth=False,
    ),
)
