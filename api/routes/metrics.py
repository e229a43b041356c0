"""/metrics: the orchestrator's Prometheus metrics, read from Redis at scrape time."""

from __future__ import annotations

from flask import Blueprint, Response

from api.metrics import metrics_response
from api.operations import STORE, TEXT, Operation, Reply
from api.routes import services

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
def metrics():
    """Prometheus text exposition; a Redis outage is the API's usual JSON 503."""
    found = services()
    body, content_type = metrics_response(found.metrics, found.engine.context.clock)
    return Response(body, content_type=content_type)


OPERATIONS = (
    Operation(
        "get",
        "/metrics",
        "metrics.metrics",
        "Prometheus metrics (text exposition format)",
        "metrics",
        {200: Reply("Prometheus text", {TEXT: {"type": "string"}})},
        errors=STORE,
    ),
)
