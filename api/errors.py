"""Every error the API answers is JSON: a stable ``code``, a human ``message``, and ``details``.

Never HTML, never a stack trace; an unexpected error is logged and answered as a JSON 500.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from orchestrator.core.errors import ApiError, OrchestratorError, StoreUnavailableError

__all__ = ["ApiError", "error_response", "register_error_handlers", "validation_details"]

log = logging.getLogger(__name__)


def store_unavailable(exc: redis.RedisError) -> StoreUnavailableError:
    """The domain error for a redis-py error (see orchestrator.store.errors)."""
    from orchestrator.store.errors import translate

    return translate(exc)


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None):
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    return response


def validation_details(exc: ValidationError, root: str = "body") -> list[dict[str, Any]]:
    """Pydantic errors as [{location, message, type}]; locations like body.plan.steps.0.id."""
    return [
        {
            "location": ".".join([root, *(str(part) for part in error["loc"])]),
            "message": error["msg"],
            "type": error["type"],
        }
        for error in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


_HTTP_MESSAGES = {
    404: ("not_found", "no such endpoint; see the README for the API's routes"),
    405: ("method_not_allowed", "this endpoint does not accept that HTTP method"),
    413: ("payload_too_large", "the request body is larger than MEOWSTIK_MAX_BODY_BYTES allows"),
}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        details = validation_details(exc)
        first = details[0] if details else {"location": "body", "message": "invalid"}
        message = (
            f"request body is invalid at {first['location']}: {first['message']}"
            f"{f' (and {len(details) - 1} more)' if len(details) > 1 else ''}"
        )
        return error_response(422, "validation_error", message, {"errors": details})

    @app.errorhandler(OrchestratorError)
    def _domain(exc: OrchestratorError):
        if isinstance(exc, StoreUnavailableError):
            log.warning("%s: %s", exc.code, exc.__cause__ or exc)
        status = exc.http_status if 400 <= exc.http_status < 600 else 500
        response = error_response(status, exc.code, exc.message, exc.details)
        response.headers.update(getattr(exc, "headers", {}))
        return response

    @app.errorhandler(redis.RedisError)
    def _redis(exc: redis.RedisError):
        """A Redis error that escaped the store classes: answered as the store would."""
        return _domain(store_unavailable(exc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code, message = _HTTP_MESSAGES.get(
            exc.code or 500, (exc.name.lower().replace(" ", "_"), exc.description or exc.name)
        )
        details = {"limitBytes": app.config.get("MAX_CONTENT_LENGTH")} if exc.code == 413 else {}
        return error_response(exc.code or 500, code, message, details)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error")
        return error_response(500, "internal_error", "an unexpected error occurred; it was logged")
