"""The errors of the API client, one tree so the client commands map them to exit codes:

    ClientError
     ├── ApiUnreachable       no usable answer: refused, timed out, dropped; /events kept 5xx
     └── ApiError             the API answered 4xx/5xx (status, code, message, details)
          └── EventsUnavailable   GET .../events is not a route of this API (404 before any event)

Also how a response or a ``requests`` failure becomes one of them (``api_error``, ``describe``).
"""

from __future__ import annotations

from typing import Any

import requests


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


def api_error(response: requests.Response) -> ApiError:
    """The API's JSON error as an ApiError; a non-JSON error body (a proxy's) keeps its text."""
    try:
        error = response.json()["error"]
        return ApiError(
            response.status_code, error["code"], error["message"], error.get("details") or {}
        )
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:200] or response.reason or "no body"
        return ApiError(response.status_code, "http_error", text)


def describe(exc: requests.RequestException) -> str:
    """A one-line reason for a connection failure, without urllib3's nested repr."""
    if isinstance(exc, requests.Timeout):
        return "no answer within the timeout"
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or dropped"
    return type(exc).__name__
