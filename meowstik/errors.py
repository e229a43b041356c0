"""The SDK's exceptions. Every answer of the API with an error status becomes an ``APIError``
(a subclass per status) carrying the API's ``code``, ``message`` and ``details``; a server that
cannot be reached is an ``APIConnectionError``; ``Session.wait`` running out of time is a
``WaitTimeout``."""

from __future__ import annotations

from typing import Any


class MeowstikError(Exception):
    """Base of every SDK error."""


class APIConnectionError(MeowstikError):
    """The API could not be reached (or did not answer in time), after the client's retries."""


class WaitTimeout(MeowstikError, TimeoutError):
    """``Session.wait(timeout_s)`` ended before the session did."""

    def __init__(self, session_id: str, status: str, timeout_s: float) -> None:
        super().__init__(f"session {session_id} still {status} after {timeout_s:g} s")
        self.session_id, self.status, self.timeout_s = session_id, status, timeout_s


class APIError(MeowstikError):
    """The API answered with an error: ``status`` (HTTP), ``code`` (e.g. "session_not_found"),
    ``message`` (what was wrong and how to fix it) and ``details`` (where: e.g. ``errors`` with
    each field's ``location``)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.details = details or {}
        self.headers = headers or {}

    @property
    def retryable(self) -> bool:
        return self.status in (429, 502, 503, 504) or bool(self.details.get("retryable"))


class BadRequestError(APIError):  # 400
    pass


class AuthenticationError(APIError):  # 401
    pass


class PermissionDeniedError(APIError):  # 403
    pass


class NotFoundError(APIError):  # 404
    pass


class ConflictError(APIError):  # 409
    pass


class UnprocessableEntityError(APIError):  # 422: a field, header or plan is invalid
    pass


class RateLimitError(APIError):  # 429
    pass


class ServerError(APIError):  # 5xx
    pass


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def error_from(status: int, body: Any, headers: dict[str, str] | None = None) -> APIError:
    """The exception for an error answer; its body is the API's ``{"error": {code, message,
    details}}`` (anything else is described as it came)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or "error")
        message = str(error.get("message") or "")
        details = error.get("details") if isinstance(error.get("details"), dict) else {}
    else:
        code, message, details = "invalid_response", f"unexpected answer: {body!r:.200}", {}
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    return cls(status, code, message, details, headers)
