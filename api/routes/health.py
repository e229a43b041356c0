"""/healthz: the API answers and Redis answers."""

from __future__ import annotations

from flask import Blueprint, jsonify

from api import schemas
from api.operations import JSON, Operation, Reply, ok
from api.routes import services
from orchestrator.core.errors import StoreUnavailableError

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    try:
        services().metrics.ping()
    except StoreUnavailableError as exc:  # a 503 in the Health shape, not the Error one
        cause = exc.__cause__ or exc  # the redis-py error says what failed
        response = jsonify({"status": "unavailable", "redis": f"{type(cause).__name__}: {cause}"})
        response.status_code = 503
        return response
    return jsonify({"status": "ok", "redis": "ok"})


OPERATIONS = (
    Operation(
        "get",
        "/healthz",
        "health.healthz",
        "200 when the API and Redis answer, else 503",
        "health",
        {
            200: ok(schemas.Health),
            503: Reply("Redis does not answer", {JSON: schemas.Health}),
        },
        auth=False,
    ),
)
