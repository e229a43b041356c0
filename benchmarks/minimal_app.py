"""The reference for the API capacity figures: the least a Flask app can do per request.

benchmarks/http_load.py serves it under the product API's own gunicorn command, so the ratio of
the product's requests per second to this app's measures what the API's routes cost, not what
Flask, gunicorn or the machine cost.
"""

from __future__ import annotations

from flask import Flask, jsonify, request


def create_app() -> Flask:
    """GET /ping as the floor for a status read, POST /echo as the floor for a submit."""
    app = Flask(__name__)

    @app.get("/ping")
    def ping():
        return jsonify({"ok": True})

    @app.post("/echo")
    def echo():
        # parse the body like a real submit does (415 without a JSON content type, 400 if broken)
        payload = request.get_json()
        return jsonify({"accepted": True, "fields": len(payload) if payload else 0}), 202

    return app
