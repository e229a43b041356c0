"""The asynchronous client of the REST API: meowstik/client.py's, with ``await``.

    from meowstik import AsyncClient

    async with AsyncClient() as client:
        session = await client.submit(goal="Research and implement user authentication")
        async for event in session.events():
            print(event.type, event.data)
        print((await session.wait(timeout_s=60)).results)

Answers are the API's own models (orchestrator/core/models.py: SessionSnapshot, RegisteredAgent,
PlanPreview, ...); errors are meowstik.errors exceptions carrying the API's code, message and
details. A submit sends an Idempotency-Key (a new UUID, or yours) and reuses it on its own
retries, so a lost answer never makes a second session.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from meowstik import _core
from meowstik._core import Call, Event
from meowstik.client import MAX_RECONNECT_FAILURES
from meowstik.errors import APIConnectionError, WaitTimeout
from meowstik.sse import SseParser, asplit_lines
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

ModelT = TypeVar("ModelT", bound=BaseModel)


class AsyncClient:
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
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = _core.base_url_from_env(base_url)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self._http = http or httpx.AsyncClient(
            base_url=self.base_url, headers=_core.headers(_core.token_from_env(token))
        )
        if http is not None:
            self._http.base_url = httpx.URL(self.base_url)
            self._http.headers.update(_core.headers(_core.token_from_env(token)))
        self.agents = AsyncAgents(self)
        self.plans = AsyncPlans(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    # --- sessions -------------------------------------------------------------------------------
    async def submit(
        self,
        goal: str | None = None,
        *,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> AsyncSession:
        """Start a session (POST /orchestrate). ``fields``: plan, context (initialContext),
        template, planner, budget, user_id, chat_id, metadata, failure_policy, max_attempts,
        policy, experiment, agent_overrides, callback_url (a webhook), and ``extra`` (a dict
        sent as is)."""
        call = _core.submit_call(goal, idempotency_key, fields)
        return AsyncSession(self, SessionSnapshot.model_validate(await self.request(call)))

    async def session(self, session_id: str) -> AsyncSession:
        """A session by id (GET /sessions/<id>)."""
        return AsyncSession(self, await self._snapshot(session_id))

    async def sessions(
        self, *, user_id: str | None = None, status: str | None = None, limit: int = 50
    ) -> AsyncIterator[SessionSummary]:
        """Sessions newest first, page after page."""
        cursor = None
        while True:
            params = {"userId": user_id, "status": status, "limit": min(limit, 200)}
            params["cursor"] = cursor
            page = await self.get(_core.path("sessions"), params=params)
            for row in page["sessions"]:
                yield SessionSummary.model_validate(row)
            cursor = page.get("nextCursor")
            if not cursor:
                return

    async def _snapshot(self, session_id: str) -> SessionSnapshot:
        return SessionSnapshot.model_validate(await self.get(_core.path("sessions", session_id)))

    # --- transport ------------------------------------------------------------------------------
    async def get(self, url: str, params: dict[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        return await self.request(Call("GET", url, params=clean, safe=True))

    async def post(self, url: str, body: Any = None, *, safe: bool = False) -> Any:
        return await self.request(Call("POST", url, json=body, safe=safe))

    async def request(self, call: Call) -> Any:
        """Send ``call``, retrying passing failures when it is safe; the decoded JSON answer.

        Raises APIError (a subclass per status) or APIConnectionError."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(
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
                await asyncio.sleep(_core.backoff_s(attempt))
                continue
            if attempt <= self.max_retries and _core.should_retry_status(
                call, response.status_code
            ):
                await asyncio.sleep(_core.backoff_s(attempt, response.headers.get("Retry-After")))
                continue
            return _core.parse(response)

    def stream(self, call: Call) -> AbstractAsyncContextManager[httpx.Response]:
        """Open ``call`` once, its answer's body streamed (an event stream), for use in an
        ``async with``: no retries and no parsing, the caller reads ``status_code`` and iterates
        the bytes. Opening or reading raises ``httpx.TransportError``; resuming is the caller's."""
        return self._http.stream(
            call.method,
            call.url,
            json=call.json,
            params=call.params,
            headers=call.headers,
            timeout=_core.timeout(call, self.timeout_s),
        )


class AsyncSession:
    """A session of the API: ``id``, the last ``snapshot`` read, and what can be done with it."""

    def __init__(self, client: AsyncClient, snapshot: SessionSnapshot) -> None:
        self.client = client
        self.id = snapshot.session_id
        self.snapshot = snapshot

    def __repr__(self) -> str:
        return f"AsyncSession({self.id!r}, status={self.status!r})"

    @property
    def status(self) -> str:
        return str(self.snapshot.status.value)

    async def refresh(self) -> SessionSnapshot:
        self.snapshot = await self.client._snapshot(self.id)
        return self.snapshot

    async def wait(self, timeout_s: float | None = None, *, poll_s: float = 1.0) -> SessionSnapshot:
        """The snapshot once the session ended (completed, failed or cancelled). Polls, from
        every 50 ms up to every ``poll_s``. Raises WaitTimeout after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        interval = 0.05
        while (await self.refresh()).status.value not in _core.TERMINAL:
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(self.id, self.status, timeout_s or 0)
            pause = interval if deadline is None else min(interval, deadline - time.monotonic())
            await asyncio.sleep(max(pause, 0))
            interval = min(interval * 2, poll_s)
        return self.snapshot

    async def events(self, last_event_id: str | None = None) -> AsyncIterator[Event]:
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
                async with self.client.stream(call) as got:
                    if got.status_code >= 400:
                        await got.aread()
                        raise _core.stream_refused(got)
                    failures = 0
                    parser.reset()
                    async for line in asplit_lines(got.aiter_bytes()):
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
            if quiet and (await self.refresh()).status.value in _core.TERMINAL:
                return
            await asyncio.sleep(_core.reconnect_delay_s(parser.retry_ms, failures))

    async def cancel(self) -> SessionSnapshot:
        """Stop the session: nothing more starts, running steps are revoked."""
        body = await self.client.post(_core.path("sessions", self.id, "cancel"), safe=True)
        self.snapshot = SessionSnapshot.model_validate(body)
        return self.snapshot

    async def answer(self, step_id: str, value: Any) -> SessionSnapshot:
        """Answer a step waiting for operator input."""
        body = await self.client.request(_core.answer_call(self.id, step_id, value))
        self.snapshot = SessionSnapshot.model_validate(body)
        return self.snapshot

    async def retry(self) -> SessionSnapshot:
        """Run a failed or cancelled session's failed, skipped and cancelled steps again in the
        same session; completed steps keep their results and cost."""
        body = await self.client.post(_core.path("sessions", self.id, "retry"))
        self.snapshot = SessionSnapshot.model_validate(body)
        return self.snapshot

    @property
    def state(self) -> Coroutine[Any, Any, SessionStateOut]:
        """Its state now (``await session.state``): shared, temporary, private per agent."""
        return self._read(SessionStateOut, "state")

    @property
    def cost(self) -> Coroutine[Any, Any, SessionCost]:
        """What it spent (``await session.cost``): tokens, dollars, CPU, per step and model."""
        return self._read(SessionCost, "cost")

    async def _read(self, model: type[ModelT], what: str) -> ModelT:
        return model.model_validate(await self.client.get(_core.path("sessions", self.id, what)))


class AsyncAgents:
    """client.agents: the registry over REST."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def register(self, definition: AgentDefinition | dict[str, Any]) -> RegisteredAgent:
        body = _core.jsonable(definition)
        return RegisteredAgent.model_validate(await self.client.post(_core.path("agents"), body))

    async def list(self) -> list[RegisteredAgent]:
        body = await self.client.get(_core.path("agents"))
        return [RegisteredAgent.model_validate(a) for a in body["agents"]]

    async def get(self, agent_id: str) -> AgentDetail:
        return AgentDetail.model_validate(await self.client.get(_core.path("agents", agent_id)))

    async def update(self, agent_id: str, **changes: Any) -> RegisteredAgent:
        """PATCH: status, priority, max_load, name, description, metadata."""
        call = _core.update_agent_call(agent_id, changes)
        return RegisteredAgent.model_validate(await self.client.request(call))

    async def delete(self, agent_id: str) -> RegisteredAgent:
        call = Call("DELETE", _core.path("agents", agent_id))
        return RegisteredAgent.model_validate((await self.client.request(call))["agent"])


class AsyncPlans:
    """client.plans: plan and check a request without running it."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def preview(self, goal: str | None = None, **fields: Any) -> PlanPreview:
        call = _core.preview_call(goal, fields)
        return PlanPreview.model_validate(await self.client.request(call))


__all__ = ["AsyncAgents", "AsyncClient", "AsyncPlans", "AsyncSession"]
