"""The errors of the API client, one tree so the client commands map them to exit codes:

    ClientError
     ├── ApiUnreachable       no usable answer: refused, timed out, dropped; /events kept 5xx
     └── ApiError             the API answered 4xx/5xx (status, code, message, details)
          └── EventsUnavailable   GET .../events is not a route of this API (404 before any event)

Also how the SDK's errors (meowstik/errors.py), and the httpx failures of an event stream,
become one of them (``api_error``, ``describe``).
"""

from __future__ import annotations

from typing import Any

import httpx

from meowstik.errors import APIConnectionError, APIError


class ClientError(Exception):
    """Anything that kept a client command from talking to the API."""


class ApiUnreachable(ClientError):
    """No usable answer from the API at ``url``."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(
            f"cannot reach the API at {url}: {reason}. Is it running (`make up`)? "
            "Point the CLI at it with --api-url or MEOWSTIK_API_URL."
        )


class ApiError(ClientError):
    """The API answered with an error: its JSON ``{"error": {"code", "message", "details"}}``."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        super().__init__(f"API error {status} {code}: {message}")


class EventsUnavailable(ApiError):
    """This API has no live events route; callers fall back to polling the session."""


def api_error(error: APIError) -> ApiError:
    """The SDK's error answer as the CLI's: the same status, code, message and details."""
    return ApiError(error.status, error.code, error.message, error.details)


def describe(exc: APIConnectionError | httpx.TransportError) -> str:
    """A one-line reason for a connection failure (the SDK's names the httpx error it wraps)."""
    cause = exc.__cause__ if isinstance(exc, APIConnectionError) else exc
    if isinstance(cause, httpx.TimeoutException):
        return "no answer within the timeout"
    if isinstance(cause, httpx.NetworkError | httpx.RemoteProtocolError):
        return "connection refused or dropped"
    text = str(cause if cause is not None else exc)
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__
