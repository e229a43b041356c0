"""The HTTP side of the client commands: the REST API and its event stream, reached through
the SDK's transport (``meowstik.Client`` on httpx), so the product has one HTTP client.

Answers stay the API's JSON as plain dicts (the commands print them as they came); every failure
becomes an exception of the ``api_errors`` tree (``ApiUnreachable``, ``ApiError``,
``EventsUnavailable``), so the commands map them to exit codes.

What is sent again, by the SDK's rules (``Call.safe``): GETs and POST /orchestrate after a failed
or dropped connection or a 429/502-504, up to GET_RETRIES times (a submit carries an
Idempotency-Key, so the API answers a resend with the session the first one made); other POSTs
and PATCHes only when the connection failed before the request could be sent.

Live events are Server-Sent Events, parsed by the SDK's ``SseParser``.
:meth:`ApiClient.follow_events` reconnects with ``Last-Event-ID`` when a stream ends early, so a
dropped connection loses and repeats nothing.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from typing import Any

import httpx

from cli.api_errors import (
    ApiError,
    ApiUnreachable,
    ClientError,
    EventsUnavailable,
    api_error,
    describe,
)
from meowstik import Client
from meowstik._core import API_PREFIX, Call, new_idempotency_key, parse_error, path
from meowstik.errors import APIConnectionError, APIError
from meowstik.sse import SseEvent, SseParser, split_lines
from orchestrator.core.statuses import SESSION_TERMINAL

DEFAULT_API_URL = "http://127.0.0.1:5000"
REQUEST_TIMEOUT_S = 10.0
STREAM_READ_TIMEOUT_S = 30.0  # the API sends a keep-alive comment every few seconds
# Planning happens inside POST /orchestrate and /plans; an LLM planner may take minutes
PLANNING_TIMEOUT_S = 600.0
RECONNECT_DELAY_S = 0.5
GET_RETRIES = 2
MAX_RECONNECT_FAILURES = 5  # consecutive connection failures before giving up
POLL_INTERVAL_S = 0.5  # polling replaces the event stream on an API without one
LOG_PAGE_SIZE = 500
FINAL_EVENT = "session.finished"  # the server closes the stream after it
FLOWER_WORKERS_PATH = "/api/workers"  # Flower's shapes, served by the API next to its own
FLOWER_QUEUES_PATH = "/api/queues/length"


class ApiClient:
    """The REST API at ``base_url`` (e.g. http://127.0.0.1:5000), with timeouts on every call.

    With a ``token``, every request (the event stream too) carries ``Authorization: Bearer
    <token>``; the token is never part of a message or an exception. ``http``: the httpx client
    to send with (tests give one on a ``MockTransport``).
    """

    def __init__(
        self,
        base_url: str,
        http: httpx.Client | None = None,
        timeout_s: float = REQUEST_TIMEOUT_S,
        reconnect_delay_s: float | None = None,
        token: str | None = None,
    ) -> None:
        """Raises ClientError: ``token`` holds whitespace or control characters (it could not
        be sent as one header value), or ``base_url`` is not a URL."""
        if token and any(ch.isspace() or not ch.isprintable() for ch in token):
            raise ClientError("the API token must not contain whitespace or control characters")
        self.base_url = base_url.rstrip("/")
        try:
            # "" rather than None: without a token the SDK would read MEOWSTIK_API_TOKEN itself
            self.sdk = Client(
                self.base_url, token or "", timeout_s=timeout_s, max_retries=GET_RETRIES, http=http
            )
        except httpx.InvalidURL as exc:
            raise ClientError(
                f"the API URL {self.base_url!r} is not valid ({exc}); give --api-url or "
                "MEOWSTIK_API_URL as http://HOST:PORT"
            ) from exc
        self.timeout_s = timeout_s
        self.reconnect_delay_s = (
            RECONNECT_DELAY_S if reconnect_delay_s is None else reconnect_delay_s
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self.sdk.close()

    def url(self, api_path: str) -> str:
        return f"{self.base_url}{API_PREFIX}{api_path}"

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /orchestrate: the new session's snapshot. The request carries a new
        Idempotency-Key, so resending it after a lost answer makes no second session."""
        call = Call(
            "POST",
            path("orchestrate"),
            json=body,
            headers={"Idempotency-Key": new_idempotency_key()},
            timeout_s=self.planning_timeout_s,
            safe=True,
        )
        return self._send(call)

    def session(self, session_id: str) -> dict[str, Any]:
        return self._get(path("sessions", session_id))

    def cost(self, session_id: str) -> dict[str, Any]:
        """GET /sessions/<id>/cost: what it spent, by step, agent and model, and the prices."""
        return self._get(path("sessions", session_id, "cost"))

    def preview(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /plans: the plan a request would run, its critical path and estimate."""
        call = Call("POST", path("plans"), json=body, timeout_s=self.planning_timeout_s)
        return self._send(call)

    @property
    def planning_timeout_s(self) -> float:
        """How long to wait for the planner (an LLM's replies and repairs); connecting keeps
        the usual timeout."""
        return max(self.timeout_s, PLANNING_TIMEOUT_S)

    def templates(self) -> dict[str, Any]:
        return self._get(path("templates"))

    def cancel(self, session_id: str) -> dict[str, Any]:
        """POST /sessions/<id>/cancel: the session's snapshot after cancelling."""
        return self._send(Call("POST", path("sessions", session_id, "cancel")))

    def provide_input(self, session_id: str, step_id: str, value: Any) -> dict[str, Any]:
        """POST /sessions/<id>/input ``{"stepId", "value"}``: the session's snapshot."""
        body = {"stepId": step_id, "value": value}
        return self._send(Call("POST", path("sessions", session_id, "input"), json=body))

    def agents(self, metrics: str | None = None) -> dict[str, Any]:
        """GET /agents: ``{"agents": [...], "count"}``; with ``metrics`` (1h, 24h, all),
        ``?metrics=``: each agent with its ``metrics`` over that window."""
        return self._get(path("agents"), metrics=metrics)

    def update_agent(self, agent_id: str, change: dict[str, Any]) -> dict[str, Any]:
        """PATCH /agents/<id> (status, priority, maxLoad...): the agent as updated."""
        return self._send(Call("PATCH", path("agents", agent_id), json=change))

    def experiments(self) -> dict[str, Any]:
        """GET /experiments: ``{"experiments": [...], "count"}``, oldest first."""
        return self._get(path("experiments"))

    def experiment_report(self, name: str) -> dict[str, Any]:
        """GET /experiments/<name>: the experiment, per variant figures, and the verdicts."""
        return self._get(path("experiments", name))

    def workers(self) -> dict[str, Any]:
        """GET /api/workers (Flower's shape): worker name -> document."""
        return self._get(FLOWER_WORKERS_PATH)

    def queue_lengths(self) -> dict[str, Any]:
        """GET /api/queues/length (Flower's shape): ``{"active_queues": [{name, messages}]}``."""
        return self._get(FLOWER_QUEUES_PATH)

    def logs(self, session_id: str, **query: Any) -> dict[str, Any]:
        """One page of the session's log; ``query`` takes the API's names (level, agentId,
        limit, cursor...); None values are left out."""
        return self._get(path("sessions", session_id, "logs"), **query)

    def iter_logs(
        self, session_id: str, level: str | None = None, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """The session's entries so far, oldest first (at most ``limit``), page by page."""
        cursor, remaining = None, limit
        while remaining is None or remaining > 0:
            size = LOG_PAGE_SIZE if remaining is None else min(LOG_PAGE_SIZE, remaining)
            page = self.logs(session_id, level=level, limit=size, cursor=cursor)
            yield from page["logs"]
            if remaining is not None:
                remaining -= len(page["logs"])
            cursor = page.get("nextCursor")
            if not cursor:
                return

    def live_logs(self, session_id: str) -> Iterator[dict[str, Any]]:
        """Every entry of the session, then new ones as they come, until it ends: from the
        event stream, or by polling the log on an API without one."""
        try:
            for event in self.follow_events(session_id):
                yield event.json()
        except EventsUnavailable:
            yield from self._poll_logs(session_id)

    def _poll_logs(self, session_id: str) -> Iterator[dict[str, Any]]:
        cursor = None
        while True:
            # the status first: entries written before the session ended are then in the page
            over = self.session(session_id)["status"] in SESSION_TERMINAL
            page = self.logs(session_id, limit=LOG_PAGE_SIZE, cursor=cursor)
            yield from page["logs"]
            cursor = page["logs"][-1]["id"] if page["logs"] else cursor
            if page.get("nextCursor"):
                continue
            if over:
                return
            time.sleep(POLL_INTERVAL_S)

    def poll_session(self, session_id: str) -> Iterator[dict[str, Any]]:
        """Snapshots every POLL_INTERVAL_S, through the first whose status is final."""
        while True:
            snapshot = self.session(session_id)
            yield snapshot
            if snapshot["status"] in SESSION_TERMINAL:
                return
            time.sleep(POLL_INTERVAL_S)

    def _get(self, url: str, /, **params: Any) -> dict[str, Any]:
        """GET ``url`` (a path under the base URL) with ``params`` (None values left out)."""
        query = {name: value for name, value in params.items() if value is not None}
        return self._send(Call("GET", url, params=query or None, safe=True))

    def _send(self, call: Call) -> dict[str, Any]:
        """Send ``call`` through the SDK (its retries included): the JSON object answered."""
        try:
            answer = self.sdk.request(call)
        except APIConnectionError as exc:
            raise ApiUnreachable(self.base_url, describe(exc)) from exc
        except APIError as exc:
            raise api_error(exc) from exc
        if not isinstance(answer, dict):
            kind = type(answer).__name__
            raise ApiError(200, "invalid_response", f"expected a JSON object, not {kind}")
        return answer

    def follow_events(self, session_id: str) -> Iterator[SseEvent]:
        """The session's events from its first, live, through ``session.finished``.

        A stream that ends early is resumed with ``Last-Event-ID``. A connection that ends
        cleanly having brought nothing new, for a session that is over (a log without a final
        event), ends the iteration.

        Raises:
            EventsUnavailable: the API has no events route (before any event was yielded).
            ApiError: the API refused the stream (unknown session, bad id).
            ApiUnreachable: MAX_RECONNECT_FAILURES connections in a row failed.
        """
        parser = SseParser()
        failures = 0
        while True:
            resumed_after = parser.last_event_id
            try:
                finished, dropped = yield from self._connection(session_id, parser)
            except ApiUnreachable:
                failures += 1
                if failures >= MAX_RECONNECT_FAILURES:
                    raise
                self._pause(parser, failures)
                continue
            failures = 0
            if finished:
                return
            quiet = not dropped and parser.last_event_id == resumed_after
            if quiet and self.session(session_id)["status"] in SESSION_TERMINAL:
                return
            self._pause(parser, 1)

    def _connection(
        self, session_id: str, parser: SseParser
    ) -> Generator[SseEvent, None, tuple[bool, bool]]:
        """Open one event stream, resuming after the parser's last event, and yield its events;
        return (saw the final event, connection dropped).

        Raises:
            ApiUnreachable: it could not be opened, or the API answered 5xx.
            ApiError: the API refused it (EventsUnavailable: it has no such route).
        """
        headers = {"Accept": "text/event-stream"}
        if parser.last_event_id:
            headers["Last-Event-ID"] = parser.last_event_id
        url = path("sessions", session_id, "events")
        call = Call("GET", url, headers=headers, timeout_s=STREAM_READ_TIMEOUT_S)
        opened = False
        try:
            with self.sdk.stream(call) as response:
                opened = True
                if response.status_code >= 400:
                    response.read()
                    raise self._refusal(api_error(parse_error(response)))
                parser.reset()
                for line in split_lines(response.iter_bytes()):
                    event = parser.feed(line)
                    if event is None:
                        continue
                    yield event
                    if event.event == FINAL_EVENT:
                        return True, False
        except httpx.TransportError as exc:
            if not opened:
                raise ApiUnreachable(self.base_url, describe(exc)) from exc
            return False, True
        return False, False

    def _refusal(self, error: ApiError) -> ClientError:
        """What an error answer to GET .../events means: no such route on this API (a 404 that
        is not about the session), an API that cannot serve it now (5xx), or a refusal."""
        if error.status == 404 and error.code != "session_not_found":
            return EventsUnavailable(404, error.code, error.message, error.details)
        if error.status >= 500:
            return ApiUnreachable(self.base_url, str(error))
        return error

    def _pause(self, parser: SseParser, failures: int) -> None:
        """Wait before reconnecting: the server's ``retry`` if it sent one, growing with
        consecutive failures so a restarting API is not hammered."""
        delay_s = parser.retry_ms / 1000 if parser.retry_ms is not None else self.reconnect_delay_s
        time.sleep(delay_s * failures)
