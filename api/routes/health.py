"""/healthz: the API answers and Redis answers."""

from __future__ import annotations

import redis
from flask import Blueprint, current_app, jsonify

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    services = current_app.extensions["meowstik"]
    try:
        services.client.ping()
    except redis.RedisError as exc:
        response = jsonify({"status": "unavailable", "redis": f"{type(exc).__name__}: {exc}"})
        response.status_code = 503
        return response
    return jsonify({"status": "ok", "redis": "ok"})
