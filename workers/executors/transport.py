"""The bounded, retrying JSON POST that HTTP agents and the LLM executor share.

Failures map to the orchestrator's retry policy by exception type:

    post_json
    ├── connection error, timeout, 408/425/429/5xx
    │       retried here (0.2 s doubling, or Retry-After, at most 5 s), then RetryableStepError
    ├── the connection reached an always-blocked address (an HTTP agent's name resolved to
    │   link-local, multicast, ...: DNS rebinding or a bad record; see address_guard.py)
    │       PermanentStepError, before a byte of the step is sent
    ├── 3xx (redirects are never followed, so a registration cannot bounce us elsewhere)
    │       PermanentStepError
    ├── other 4xx, or a body over 10 MiB
    │       PermanentStepError
    └── 2xx
            HttpReply; http_agent.decode_json raises PermanentStepError when it is not JSON
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from orchestrator.core.errors import PermanentStepError, RetryableStepError
from orchestrator.core.signatures import SIGNATURE_HEADER, sign
from workers.executors.address_guard import BlockedAddressError, GuardedAdapter
from workers.tracing import http_request

USER_AGENT = "meowstik-orchestration"
MAX_RESPONSE_BYTES = 10 * 1024 * 1024
INITIAL_BACKOFF_S = 0.2
MAX_BACKOFF_S = 5.0
ERROR_BODY_CHARS = 500
RETRYABLE_STATUSES = frozenset({408, 425, 429})
_ERROR_BODY_BYTES = 4 * ERROR_BODY_CHARS  # enough bytes for 500 characters of UTF-8
_CHUNK_BYTES = 64 * 1024
_RETRYABLE_EXCEPTIONS = (
    requests.Timeout,
    requests.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
)

Sleep = Callable[[float], None]


@dataclass(frozen=True)
class HttpReply:
    """A 2xx answer, its body read in full (at most MAX_RESPONSE_BYTES)."""

    status: int
    content_type: str
    body: bytes


class _AttemptFailed(Exception):
    """One attempt failed in a way worth retrying; ``retry_after_s`` is the server's wish."""

    def __init__(self, description: str, retry_after_s: float | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.retry_after_s = retry_after_s


def describe_url(url: str) -> str:
    """The URL as messages show it: without its query string, which often carries API keys."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def backoff_delay_s(retry: int) -> float:
    """The pause before in-process retry number ``retry`` (0-based): 0.2 s doubling, capped."""
    return min(MAX_BACKOFF_S, INITIAL_BACKOFF_S * 2**retry)


def post_json(
    url: str,
    payload: Any,
    *,
    service: str,
    timeout_s: float,
    max_retries: int,
    headers: dict[str, str] | None = None,
    sleep: Sleep = time.sleep,
    guard_addresses: bool = False,
    signing_keys: Sequence[str] = (),
) -> HttpReply:
    """POST ``payload`` as JSON and return the 2xx reply, retrying transient failures.

    Args:
        service: names the remote side in error messages, e.g. "HTTP agent 'x' at http://...".
        timeout_s: bound on connecting, on each read, and on reading the whole body.
        max_retries: in-process retries after the first attempt; the orchestrator's own retry
            and fallback apply once they are spent.
        sleep: how to pause between attempts (tests pass a recorder).
        guard_addresses: refuse to talk to an always-blocked address (HTTP agents, whose URLs
            come from API clients); the configured LLM API is not guarded.
        signing_keys: sign each attempt with these secrets (X-Meowstik-Signature, a fresh
            timestamp each time: orchestrator/core/signatures.py); none: unsigned.

    Raises:
        RetryableStepError: every attempt failed transiently.
        PermanentStepError: a redirect, another 4xx, an oversized body, an unusable request,
            or (guarded) a blocked address.
    """
    data = json.dumps(payload).encode()
    all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
    failures: list[str] = []
    for retry in range(max_retries + 1):
        if signing_keys:
            all_headers[SIGNATURE_HEADER] = sign(signing_keys, data)
        try:
            return _post_once(
                url, data, all_headers, service=service, timeout_s=timeout_s, guard=guard_addresses
            )
        except _AttemptFailed as failure:
            failures.append(failure.description)
            if retry < max_retries:
                wait_s = failure.retry_after_s
                sleep(backoff_delay_s(retry) if wait_s is None else wait_s)
    raise RetryableStepError(
        f"{service} failed {len(failures)} time(s); last: {failures[-1]}. It may be down or "
        "overloaded; the orchestrator retries the step or falls back to another agent.",
        details={"endpoint": describe_url(url), "attempts": len(failures), "errors": failures},
    )


def _post_once(
    url: str,
    data: bytes,
    headers: dict[str, str],
    *,
    service: str,
    timeout_s: float,
    guard: bool = False,
) -> HttpReply:
    """One attempt; while tracing is on, a client span whose ``traceparent`` the server gets."""
    with http_request("POST", url, headers) as traced:
        reply = _send(url, data, traced.headers, service=service, timeout_s=timeout_s, guard=guard)
        traced.status(reply.status)
        return reply


def _send(
    url: str,
    data: bytes,
    headers: dict[str, str],
    *,
    service: str,
    timeout_s: float,
    guard: bool = False,
) -> HttpReply:
    deadline = time.monotonic() + timeout_s
    try:
        with (
            _session(guard) as session,
            session.post(
                url,
                data=data,
                headers=headers,
                timeout=timeout_s,
                stream=True,
                allow_redirects=False,
            ) as response,
        ):
            return _reply(response, service=service, deadline=deadline)
    except BlockedAddressError as exc:
        raise PermanentStepError(
            f"{service}: {exc}, an address agents may never be called at (always blocked, "
            "whatever MEOWSTIK_HTTP_AGENT_ALLOWED_HOSTS says); nothing was sent. Fix the name's "
            "DNS records or register the agent at a routable address.",
            details={
                "endpoint": describe_url(url),
                "host": exc.host,
                "address": exc.address,
                "blockedRange": exc.network,
                "rule": "blocked_range",
            },
        ) from exc
    except requests.exceptions.SSLError as exc:
        raise PermanentStepError(
            f"{service}: the TLS handshake failed ({exc}); fix the server's certificate or the "
            "endpoint's scheme.",
            details={"endpoint": describe_url(url)},
        ) from exc
    except _RETRYABLE_EXCEPTIONS as exc:
        raise _AttemptFailed(f"{type(exc).__name__}: {exc}") from exc
    except requests.RequestException as exc:
        raise PermanentStepError(
            f"{service}: the request could not be made ({type(exc).__name__}: {exc}). "
            "Check the URL.",
            details={"endpoint": describe_url(url)},
        ) from exc


def _session(guard: bool) -> requests.Session:
    session = requests.Session()
    if guard:
        adapter = GuardedAdapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    return session


def _reply(response: requests.Response, *, service: str, deadline: float) -> HttpReply:
    """Classify a response by status: return a 2xx, raise for everything else."""
    status = response.status_code
    content_type = response.headers.get("Content-Type", "(none)")
    if 200 <= status < 300:
        body, complete = _read_body(response, MAX_RESPONSE_BYTES, deadline)
        if not complete:
            raise PermanentStepError(
                f"{service} sent a body over {MAX_RESPONSE_BYTES} bytes; agents must answer "
                "with less.",
                details={"status": status, "limitBytes": MAX_RESPONSE_BYTES},
            )
        return HttpReply(status, content_type, body)
    text = _error_text(response, deadline)
    if status in RETRYABLE_STATUSES or status >= 500:
        raise _AttemptFailed(f"HTTP {status}: {text!r}", _retry_after_s(response))
    if 300 <= status < 400:
        location = response.headers.get("Location", "(none)")
        raise PermanentStepError(
            f"{service} answered HTTP {status} redirecting to {location!r}; redirects are not "
            "followed. Register the final URL as the endpoint.",
            details={"status": status, "location": location},
        )
    raise PermanentStepError(
        f"{service} rejected the request with HTTP {status}: {text!r}. Retrying would not help; "
        "check the agent's endpoint and what it expects.",
        details={"status": status, "body": text},
    )


def _read_body(
    response: requests.Response, limit_bytes: int, deadline: float
) -> tuple[bytes, bool]:
    """Read at most ``limit_bytes`` (decompressed). Returns the bytes and whether that was all.

    Raises _AttemptFailed when the whole body takes longer than the timeout: requests only
    bounds each read, so a server dripping bytes could otherwise hold the step forever.
    """
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(_CHUNK_BYTES):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit_bytes:
            return b"".join(chunks)[:limit_bytes], False
        if time.monotonic() > deadline:
            raise _AttemptFailed("timed out reading the response body")
    return b"".join(chunks), True


def _error_text(response: requests.Response, deadline: float) -> str:
    """The first ERROR_BODY_CHARS characters of an error response, for the message."""
    body, _ = _read_body(response, _ERROR_BODY_BYTES, deadline)
    return body.decode("utf-8", errors="replace")[:ERROR_BODY_CHARS]


def _retry_after_s(response: requests.Response) -> float | None:
    """Retry-After in seconds, capped at MAX_BACKOFF_S; None when absent or an HTTP date."""
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_BACKOFF_S)
