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

from orchestrator.core.errors import OrchestratorError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error raised by a view with its HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}
        self.headers = dict(headers or {})
        if status == 401:
            self.headers.setdefault("WWW-Authenticate", 'Bearer realm="meowstik"')


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
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        response = error_response(exc.status, exc.code, exc.message, exc.details)
        response.headers.update(exc.headers)
        return response

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
        status = exc.http_status if 400 <= exc.http_status < 600 else 500
        return error_response(status, exc.code, exc.message, exc.details)

    @app.errorhandler(redis.RedisError)
    def _redis(exc: redis.RedisError):
        log.warning("redis unavailable: %s", exc)
        if isinstance(exc, redis.AuthenticationError | redis.exceptions.NoPermissionError):
            return error_response(
                503,
                "store_unavailable",
                "Redis refused the API's credentials (MEOWSTIK_REDIS_URL: wrong user or "
                "password, a disabled user, or missing ACL permissions); an operator must fix "
                "the URL",
                {"retryable": False},
            )
        return error_response(
            503,
            "store_unavailable",
            f"Redis did not answer ({type(exc).__name__}); retry shortly",
            {"retryable": True},
        )

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
