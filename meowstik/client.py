"""The synchronous client of the REST API (the async one is meowstik/aio.py).

    from meowstik import Client

    with Client() as client:  # MEOWSTIK_API_URL (http://127.0.0.1:5000), MEOWSTIK_API_TOKEN
        session = client.submit(goal="Research and implement user authentication")
        for event in session.events():
            print(event.type, event.data)
        print(session.wait(timeout_s=60).results)

Answers are the API's own models (orchestrator/core/models.py: SessionSnapshot, RegisteredAgent,
PlanPreview, ...); errors are meowstik.errors exceptions carrying the API's code, message and
details. A submit sends an Idempotency-Key (a new UUID, or yours) and reuses it on its own
retries, so a lost answer never makes a second session.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx

from meowstik import _core
from meowstik._core import Call, Event
from meowstik.errors import APIConnectionError, APIError, WaitTimeout
from meowstik.sse import SseParser, split_lines
from orchestrator.core.agent_metrics import AgentDetail
from orchestrator.core.costs import SessionCost
from orchestrator.core.models import (
    AgentDefinition,
    PlanPreview,
    RegisteredAgent,
    SessionSnapshot,
    SessionSummary,
)
from orchestrator.core.state_models import SessionStateOut

MAX_RECONNECT_FAILURES = 5


class Client:
    """The API at ``base_url`` with ``token``; both default to the environment
    (MEOWSTIK_API_URL, MEOWSTIK_API_TOKEN). ``max_retries``: how often a request that failed
    for a passing reason (no connection, 429, 502-504) is sent again, when that is safe."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout_s: float = _core.DEFAULT_TIMEOUT_S,
        max_retries: int = _core.DEFAULT_MAX_RETRIES,
        http: httpx.Client | None = None,
    ) -> None:
        self.base_url = _core.base_url_from_env(base_url)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self._http = http or httpx.Client(
            base_url=self.base_url, headers=_core.headers(_core.token_from_env(token))
        )
        if http is not None:
            self._http.base_url = httpx.URL(self.base_url)
            self._http.headers.update(_core.headers(_core.token_from_env(token)))
        self.agents = Agents(self)
        self.plans = Plans(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- sessions -------------------------------------------------------------------------------
    def submit(
        self,
        goal: str | None = None,
        *,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> Session:
        """Start a session (POST /orchestrate). ``fields``: plan, context (initialContext),
        template, planner, budget, user_id, chat_id, metadata, failure_policy, max_attempts,
        policy, experiment, agent_overrides, callback_url (a webhook), and ``extra`` (a dict
        sent as is)."""
        call = _core.submit_call(goal, idempotency_key, fields)
        return Session(self, SessionSnapshot.model_validate(self.request(call)))

    def session(self, session_id: str) -> Session:
        """A session by id (GET /sessions/<id>)."""
        return Session(self, self._snapshot(session_id))

    def sessions(
        self, *, user_id: str | None = None, status: str | None = None, limit: int = 50
    ) -> Iterator[SessionSummary]:
        """Sessions newest first, page after page."""
        cursor = None
        while True:
            params = {"userId": user_id, "status": status, "limit": min(limit, 200)}
            params["cursor"] = cursor
            page = self.get(_core.path("sessions"), params=params)
            for row in page["sessions"]:
                yield SessionSummary.model_validate(row)
            cursor = page.get("nextCursor")
            if not cursor:
                return

    def _snapshot(self, session_id: str) -> SessionSnapshot:
        return SessionSnapshot.model_validate(self.get(_core.path("sessions", session_id)))

    # --- transport ------------------------------------------------------------------------------
    def get(self, url: str, params: dict[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        return self.request(Call("GET", url, params=clean, safe=True))

    def post(self, url: str, body: Any = None, *, safe: bool = False) -> Any:
        return self.request(Call("POST", url, json=body, safe=safe))

    def request(self, call: Call) -> Any:
        """Send ``call``, retrying passing failures when it is safe; the decoded JSON answer.

        Raises APIError (a subclass per status) or APIConnectionError."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(
                    call.method,
                    call.url,
                    json=call.json,
                    params=call.params,
                    headers=call.headers,
                    timeout=_core.timeout(call, self.timeout_s),
                )
            except httpx.TransportError as exc:
                if attempt > self.max_retries or not call.retries_after(exc):
                    raise APIConnectionError(
                        f"{call.method} {self.base_url}{call.url}: {type(exc).__name__}: {exc}"
                    ) from exc
                time.sleep(_core.backoff_s(attempt))
                continue
            if attempt <= self.max_retries and _core.should_retry_status(
                call, response.status_code
            ):
                time.sleep(_core.backoff_s(attempt, response.headers.get("Retry-After")))
                continue
            return _core.parse(response)

    def stream(self, call: Call) -> AbstractContextManager[httpx.Response]:
        """Open ``call`` once, its answer's body streamed (an event stream), for use in a
        ``with``: no retries and no parsing, the caller reads ``status_code`` and iterates the
        bytes. Opening or reading raises ``httpx.TransportError``; resuming is the caller's."""
        return self._http.stream(
            call.method,
            call.url,
            json=call.json,
            params=call.params,
            headers=call.headers,
            timeout=_core.timeout(call, self.timeout_s),
        )


class Session:
    """A session of the API: ``id``, the last ``snapshot`` read, and what can be done with it."""

    def __init__(self, client: Client, snapshot: SessionSnapshot) -> None:
        self.client = client
        self.id = snapshot.session_id
        self.snapshot = snapshot

    def __repr__(self) -> str:
        return f"Session({self.id!r}, status={self.status!r})"

    @property
    def status(self) -> str:
        return str(self.snapshot.status.value)

    def refresh(self) -> SessionSnapshot:
        self.snapshot = self.client._snapshot(self.id)
        return self.snapshot

    def wait(self, timeout_s: float | None = None, *, poll_s: float = 1.0) -> SessionSnapshot:
        """The snapshot once the session ended (completed, failed or cancelled). Polls, from
        every 50 ms up to every ``poll_s``. Raises WaitTimeout after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        interval = 0.05
        while self.refresh().status.value not in _core.TERMINAL:
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(self.id, self.status, timeout_s or 0)
            pause = interval if deadline is None else min(interval, deadline - time.monotonic())
            time.sleep(max(pause, 0))
            interval = min(interval * 2, poll_s)
        return self.snapshot

    def events(self, last_event_id: str | None = None) -> Iterator[Event]:
        """The session's live events from the first (or after ``last_event_id``) through
        ``session.finished``. A dropped connection is resumed with Last-Event-ID, so no event
        is lost or repeated. Raises APIError (e.g. NotFoundError) or APIConnectionError after
        MAX_RECONNECT_FAILURES connections in a row failed."""
        parser = SseParser(last_event_id)
        failures = 0
        while True:
            call = _core.events_call(self.id, parser.last_event_id)
            resumed_after = parser.last_event_id
            dropped = False
            try:
                with self.client.stream(call) as got:
                    if got.status_code >= 400:
                        got.read()
                        raise _core.stream_refused(got)
                    failures = 0
                    parser.reset()
                    for line in split_lines(got.iter_bytes()):
                        event = parser.feed(line)
                        if event is None:
                            continue
                        yield Event.of(event)
                        if event.event == _core.FINAL_EVENT:
                            return
            except httpx.TransportError as exc:
                failures += 1
                dropped = True
                if failures >= MAX_RECONNECT_FAILURES:
                    raise APIConnectionError(f"events of {self.id}: {exc}") from exc
            quiet = not dropped and parser.last_event_id == resumed_after
            if quiet and self.refresh().status.value in _core.TERMINAL:
                return
            time.sleep(_core.reconnect_delay_s(parser.retry_ms, failures))

    def cancel(self) -> SessionSnapshot:
        """Stop the session: nothing more starts, running steps are revoked."""
        body = self.client.post(_core.path("sessions", self.id, "cancel"), safe=True)
        self.snapshot = SessionSnapshot.model_validate(body)
        return self.snapshot

    def answer(self, step_id: str, value: Any) -> SessionSnapshot:
        """Answer a step waiting for operator input."""
        body = self.client.request(_core.answer_call(self.id, step_id, value))
        self.snapshot = SessionSnapshot.model_validate(body)
        return self.snapshot

    def retry(self) -> SessionSnapshot:
        """Run a failed or cancelled session's failed, skipped and cancelled steps again in the
        same session; completed steps keep their results and cost."""
        body = self.client.post(_core.path("sessions", self.id, "retry"))
        self.snapshot = SessionSnapshot.model_validate(body)
        return self.snapshot

    @property
    def state(self) -> SessionStateOut:
        """Its state now: shared, temporary, and private per agent."""
        return SessionStateOut.model_validate(
            self.client.get(_core.path("sessions", self.id, "state"))
        )

    @property
    def cost(self) -> SessionCost:
        """What it spent: tokens, dollars, CPU, per step and model."""
        return SessionCost.model_validate(self.client.get(_core.path("sessions", self.id, "cost")))


class Agents:
    """client.agents: the registry over REST."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def register(self, definition: AgentDefinition | dict[str, Any]) -> RegisteredAgent:
        body = _core.jsonable(definition)
        return RegisteredAgent.model_validate(self.client.post(_core.path("agents"), body))

    def list(self) -> list[RegisteredAgent]:
        body = self.client.get(_core.path("agents"))
        return [RegisteredAgent.model_validate(a) for a in body["agents"]]

    def get(self, agent_id: str) -> AgentDetail:
        return AgentDetail.model_validate(self.client.get(_core.path("agents", agent_id)))

    def update(self, agent_id: str, **changes: Any) -> RegisteredAgent:
        """PATCH: status, priority, max_load, name, description, metadata."""
        call = _core.update_agent_call(agent_id, changes)
        return RegisteredAgent.model_validate(self.client.request(call))

    def delete(self, agent_id: str) -> RegisteredAgent:
        call = Call("DELETE", _core.path("agents", agent_id))
        return RegisteredAgent.model_validate(self.client.request(call)["agent"])


class Plans:
    """client.plans: plan and check a request without running it."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def preview(self, goal: str | None = None, **fields: Any) -> PlanPreview:
        call = _core.preview_call(goal, fields)
        return PlanPreview.model_validate(self.client.request(call))


__all__ = ["APIError", "Agents", "Client", "Event", "Plans", "Session"]
