"""Meowstik's public Python API: the one import integrators need.

    from meowstik import Client, AsyncClient, agent, tool, StepInput, StepResult
    from meowstik import InputRequired, RetryableStepError, verify_signature

``Client`` / ``AsyncClient`` talk to the REST API (meowstik/client.py, meowstik/aio.py);
``agent`` and ``tool`` define agents and the tools their models may call, hosted by
``meowstik worker``; ``verify_signature`` checks the X-Meowstik-Signature of a webhook delivery
or an HTTP agent call. Everything else is internal and may move.
"""

from __future__ import annotations

from importlib import metadata

from meowstik._core import Event
from meowstik.aio import AsyncClient, AsyncSession
from meowstik.client import Client, Session
from meowstik.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    MeowstikError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnprocessableEntityError,
    WaitTimeout,
)
from orchestrator.core.errors import PermanentStepError, RetryableStepError
from orchestrator.core.signatures import SIGNATURE_HEADER, sign, verify_signature
from orchestrator.core.steps import InputRequired, StepInput, StepResult
from orchestrator.core.tools import tool
from workers.agents.base import agent

try:
    __version__ = metadata.version("meowstik-orchestration")
except metadata.PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"

__all__ = [
    "SIGNATURE_HEADER",
    "APIConnectionError",
    "APIError",
    "AsyncClient",
    "AsyncSession",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "Event",
    "InputRequired",
    "MeowstikError",
    "NotFoundError",
    "PermanentStepError",
    "PermissionDeniedError",
    "RateLimitError",
    "RetryableStepError",
    "ServerError",
    "Session",
    "StepInput",
    "StepResult",
    "UnprocessableEntityError",
    "WaitTimeout",
    "__version__",
    "agent",
    "sign",
    "tool",
    "verify_signature",
]
