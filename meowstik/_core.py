"""What the sync and async clients share: settings from the environment, request bodies, the
retry rules, and turning answers into models or exceptions. No I/O here."""

from __future__ import annotations

import os
import random
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from meowstik.errors import APIError, error_from
from meowstik.sse import SseEvent

DEFAULT_BASE_URL = "http://127.0.0.1:5000"
API_PREFIX = "/api/orchestrator"
DEFAULT_TIMEOUT_S = 30.0
# planning happens inside POST /orchestrate and /plans; an LLM planner may take minutes
PLANNING_TIMEOUT_S = 600.0
STREAM_READ_TIMEOUT_S = 60.0  # the API sends a keep-alive comment every few seconds
DEFAULT_MAX_RETRIES = 3
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_BACKOFF_S = 8.0
MAX_RETRY_AFTER_S = 30.0
FINAL_EVENT = "session.finished"
TERMINAL = frozenset({"completed", "failed", "cancelled"})


def base_url_from_env(base_url: str | None) -> str:
    return (base_url or os.environ.get("MEOWSTIK_API_URL") or DEFAULT_BASE_URL).rstrip("/")


def token_from_env(token: str | None) -> str | None:
    token = token if token is not None else os.environ.get("MEOWSTIK_API_TOKEN") or None
    if token and any(ch.isspace() or not ch.isprintable() for ch in token):
        raise ValueError("the API token must not contain whitespace or control characters")
    return token


def headers(token: str | None) -> dict[str, str]:
    from meowstik import __version__

    sent = {"Accept": "application/json", "User-Agent": f"meowstik-python/{__version__}"}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    return sent


def path(*parts: str) -> str:
    """An API path from segments, each percent-encoded (an id can never add a segment)."""
    return API_PREFIX + "".join("/" + quote(p, safe="") for p in parts)


def jsonable(value: Any) -> Any:
    """A model (by its camelCase aliases) or plain JSON value, ready to send."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    return value


def submit_body(
    goal: str | None,
    *,
    plan: Any = None,
    context: dict[str, Any] | None = None,
    template: str | None = None,
    planner: str | None = None,
    budget: Any = None,
    user_id: str | None = None,
    chat_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    failure_policy: str | None = None,
    max_attempts: int | None = None,
    policy: str | None = None,
    experiment: str | None = None,
    agent_overrides: dict[str, str] | None = None,
    callback_url: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """POST /orchestrate's body from keyword arguments (only those given)."""
    fields = {
        "goal": goal,
        "plan": jsonable(plan),
        "initialContext": context,
        "template": template,
        "planner": planner,
        "budget": jsonable(budget),
        "userId": user_id,
        "chatId": chat_id,
        "metadata": metadata,
        "failurePolicy": failure_policy,
        "maxAttempts": max_attempts,
        "policy": policy,
        "experiment": experiment,
        "agentOverrides": agent_overrides,
        "callbackUrl": callback_url,
    }
    return {**{k: v for k, v in fields.items() if v is not None}, **(extra or {})}


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


@dataclass
class Call:
    """One API request, and whether it may be sent again when its answer was lost: GETs, and
    POSTs the server deduplicates (an Idempotency-Key) or that mean the same twice (cancel).

    ``url`` is a path under the client's base URL: ``path()`` builds the API's (under
    /api/orchestrator); another, such as Flower's /api/workers, is given as it is.
    ``timeout_s``: how long to wait for the answer when that differs from the client's timeout
    (planning, an event stream's silence between keep-alives); connecting keeps the client's.
    """

    method: str
    url: str
    json: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float | None = None
    safe: bool = False

    def retries_after(self, exc: Exception) -> bool:
        """Whether a failure without an answer may be retried: one that happened before the
        request could reach the server, or any for a safe call."""
        return self.safe or isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


def timeout(call: Call, client_timeout_s: float) -> httpx.Timeout:
    """The client's timeout for every phase, but reading the answer waits ``call.timeout_s``
    when the call sets one (a long wait must not make an unreachable host a long wait too)."""
    return httpx.Timeout(client_timeout_s, read=call.timeout_s or client_timeout_s)


def backoff_s(attempt: int, retry_after: str | None = None) -> float:
    """Seconds before retry ``attempt`` (1, 2, ...): the server's Retry-After when it sent one
    (capped), else exponential with jitter."""
    if retry_after is not None:
        try:
            return min(max(float(retry_after), 0.0), MAX_RETRY_AFTER_S)
        except ValueError:
            pass
    return min(MAX_BACKOFF_S, 0.25 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


def should_retry_status(call: Call, status: int) -> bool:
    return call.safe and status in RETRY_STATUSES


def parse(response: httpx.Response) -> Any:
    """The JSON body of a success, or the APIError of a failure."""
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = response.text[:500]
        if response.status_code < 400:
            raise APIError(
                response.status_code, "invalid_response", f"not JSON: {body!r:.200}"
            ) from None
    if response.status_code >= 400:
        raise error_from(response.status_code, body, dict(response.headers))
    return body


@dataclass(frozen=True)
class Event:
    """One live event of a session (Server-Sent Events): ``id`` (resume after it), ``type``
    (e.g. "log", "step.completed", "session.finished") and ``data`` (its JSON, decoded)."""

    id: str | None
    type: str
    data: Any

    @classmethod
    def of(cls, event: SseEvent) -> Event:
        try:
            data = event.json()
        except ValueError:
            data = event.data
        return cls(event.id, event.event, data)


def parse_error(response: httpx.Response) -> APIError:
    """The APIError of an error answer whose body was read."""
    try:
        body = response.json()
    except ValueError:
        body = response.text[:500]
    return error_from(response.status_code, body, dict(response.headers))


# --- the calls both clients make (built here once; the clients only send them) ----------------


def submit_call(goal: str | None, idempotency_key: str | None, fields: dict[str, Any]) -> Call:
    """POST /orchestrate with ``fields`` (submit_body's, and ``extra``) and an Idempotency-Key
    (a new UUID unless given), which makes a resend return the first session: safe to retry."""
    extra = fields.pop("extra", None)
    return Call(
        "POST",
        path("orchestrate"),
        json=submit_body(goal, extra=extra, **fields),
        headers={"Idempotency-Key": idempotency_key or new_idempotency_key()},
        timeout_s=PLANNING_TIMEOUT_S,
        safe=True,
    )


def preview_call(goal: str | None, fields: dict[str, Any]) -> Call:
    extra = fields.pop("extra", None)
    body = submit_body(goal, extra=extra, **fields)
    return Call("POST", path("plans"), json=body, timeout_s=PLANNING_TIMEOUT_S)


def answer_call(session_id: str, step_id: str, value: Any) -> Call:
    body = {"stepId": step_id, "value": jsonable(value)}
    return Call("POST", path("sessions", session_id, "input"), json=body)


def update_agent_call(agent_id: str, changes: dict[str, Any]) -> Call:
    """PATCH /agents/<id> from snake_case keyword arguments (max_load -> maxLoad)."""
    body = {camel(k): jsonable(v) for k, v in changes.items()}
    return Call("PATCH", path("agents", agent_id), json=body)


def events_call(session_id: str, last_event_id: str | None) -> Call:
    """GET .../events, resuming after ``last_event_id`` when there is one."""
    sent = {"Accept": "text/event-stream"}
    if last_event_id:
        sent["Last-Event-ID"] = last_event_id
    url = path("sessions", session_id, "events")
    return Call("GET", url, headers=sent, timeout_s=STREAM_READ_TIMEOUT_S)


def stream_refused(response: httpx.Response) -> Exception:
    """What an events stream answered with an error status (its body read) becomes: the
    APIError of a 4xx (not 429), to raise; a transport error for a 429 or 5xx, to reconnect."""
    error = parse_error(response)
    if error.status < 500 and error.status != 429:
        return error
    return httpx.RemoteProtocolError(str(error))


def reconnect_delay_s(retry_ms: int | None, failures: int) -> float:
    """The pause before reconnecting a stream: the server's ``retry`` (else 0.5 s), times the
    failures in a row."""
    return (retry_ms / 1000 if retry_ms is not None else 0.5) * max(failures, 1)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
