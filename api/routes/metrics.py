"""/metrics: the orchestrator's Prometheus metrics, read from Redis at scrape time."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from api.metrics import metrics_response
from orchestrator.store.keys import Keys

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
def metrics():
    """Prometheus text exposition; a Redis outage is the API's usual JSON 503."""
    services = current_app.extensions["meowstik"]
    body, content_type = metrics_response(services.client, Keys(services.settings.key_prefix))
    return Response(body, content_type=content_type)
