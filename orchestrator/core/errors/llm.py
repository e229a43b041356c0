"""Errors of a chat model's API (raised by workers/executors/model_client.py), by the retry
policy they mean."""

from __future__ import annotations

from typing import Any

from orchestrator.core.errors.base import PermanentStepError, RetryableStepError


class ModelUnavailableError(RetryableStepError):
    """The model's API was unreachable, overloaded or rate limiting on every attempt.
    ``retry_after_s``: how long the server last asked to wait (None: it did not say)."""

    def __init__(
        self, message: str, *, retry_after_s: float | None, details: dict[str, Any]
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s


class ContextLengthError(PermanentStepError):
    """The prompt is longer than the model's context window."""


class ReplyTruncatedError(PermanentStepError):
    """The reply stopped at the max_tokens limit, so it is incomplete."""
