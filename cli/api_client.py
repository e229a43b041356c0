"""The HTTP side of the client commands: a small client of the REST API and its event stream.

Every failure becomes an exception of the ``api_errors`` tree (``ApiUnreachable``, ``ApiError``,
``EventsUnavailable``), so the commands map them to exit codes.

Live events are Server-Sent Events, read with ``requests`` in streaming mode and parsed by
:class:`sse.SseParser`. :meth:`ApiClient.follow_events` reconnects with ``Last-Event-ID`` when a
stream ends early, so a dropped connection loses and repeats nothing.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from typing import Any
from urllib.parse import quote

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from cli.api_errors import (
    ApiError,
    ApiUnreachable,
    ClientError,
    EventsUnavailable,
    api_error,
    describe,
)
from cli.sse import SseEvent, SseParser, arriving_bytes, split_lines
from orchestrator.core.statuses import SESSION_TERMINAL

DEFAULT_API_URL = "http://127.0.0.1:5000"
REQUEST_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
STREAM_READ_TIMEOUT_S = 30.0  # the API sends a keep-alive comment every few seconds
# Planning happens inside POST /orchestrate and /plans; an LLM planner may take minutes
PLANNING_TIMEOUT_S = 600.0
RECONNECT_DELAY_S = 0.5
GET_RETRIES = 2
MAX_RECONNECT_FAILURES = 5  # consecutive connection failures before giving up
POLL_INTERVAL_S = 0.5  # polling replaces the event stream on an API without one
LOG_PAGE_SIZE = 500
FINAL_EVENT = "session.finished"  # the server closes the stream after it


class ApiClient:
    """The REST API at ``base_url`` (e.g. http://127.0.0.1:5000), with timeouts on every call.

    With a ``token``, every request (the event stream too) carries ``Authorization: Bearer
    <token>``; the token is never part of a message or an exception.
    """

    def __init__(
        self,
        base_url: str,
        http: requests.Session | None = None,
        timeout_s: float = REQUEST_TIMEOUT_S,
        reconnect_delay_s: float | None = None,
        token: str | None = None,
    ) -> None:
        """Raises ClientError: ``token`` holds whitespace or control characters (it could not
        be sent as one header value)."""
        if token and any(ch.isspace() or not ch.isprintable() for ch in token):
            raise ClientError("the API token must not contain whitespace or control characters")
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self.http = http or retrying_session()
        self.timeout_s = timeout_s
        self.reconnect_delay_s = (
            RECONNECT_DELAY_S if reconnect_delay_s is None else reconnect_delay_s
        )

    def url(self, path: str) -> str:
        return f"{self.base_url}/api/orchestrator{path}"

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /orchestrate: the new session's snapshot."""
        return self._call("POST", "/orchestrate", json=body, timeout=self._planning_timeout)

    def session(self, session_id: str) -> dict[str, Any]:
        return self._call("GET", f"/sessions/{session_id}")

    def cost(self, session_id: str) -> dict[str, Any]:
        """GET /sessions/<id>/cost: what it spent, by step, agent and model, and the prices."""
        return self._call("GET", f"/sessions/{session_id}/cost")

    def preview(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /plans: the plan a request would run, its critical path and estimate."""
        return self._call("POST", "/plans", json=body, timeout=self._planning_timeout)

    @property
    def _planning_timeout(self) -> tuple[float, float]:
        """Connect as usual; wait for the planner (an LLM's replies and repairs) much longer."""
        return (min(self.timeout_s, CONNECT_TIMEOUT_S), max(self.timeout_s, PLANNING_TIMEOUT_S))

    def templates(self) -> dict[str, Any]:
        return self._call("GET", "/templates")

    def cancel(self, session_id: str) -> dict[str, Any]:
        """POST /sessions/<id>/cancel: the session's snapshot after cancelling."""
        return self._call("POST", f"/sessions/{session_id}/cancel")

    def provide_input(self, session_id: str, step_id: str, value: Any) -> dict[str, Any]:
        """POST /sessions/<id>/input ``{"stepId", "value"}``: the session's snapshot."""
        body = {"stepId": step_id, "value": value}
        return self._call("POST", f"/sessions/{session_id}/input", json=body)

    def agents(self, metrics: str | None = None) -> dict[str, Any]:
        """GET /agents: ``{"agents": [...], "count"}``; with ``metrics`` (1h, 24h, all),
        ``?metrics=``: each agent with its ``metrics`` over that window."""
        params = {"metrics": metrics} if metrics else None
        return self._call("GET", "/agents", params=params)

    def update_agent(self, agent_id: str, change: dict[str, Any]) -> dict[str, Any]:
        """PATCH /agents/<id> (status, priority, maxLoad...): the agent as updated."""
        return self._call("PATCH", f"/agents/{agent_id}", json=change)

    def experiments(self) -> dict[str, Any]:
        """GET /experiments: ``{"experiments": [...], "count"}``, oldest first."""
        return self._call("GET", "/experiments")

    def experiment_report(self, name: str) -> dict[str, Any]:
        """GET /experiments/<name>: the experiment, per variant figures, and the verdicts."""
        return self._call("GET", f"/experiments/{quote(name, safe='')}")

    def workers(self) -> dict[str, Any]:
        """GET /api/workers (Flower's shape): worker name -> document."""
        return self._request("GET", f"{self.base_url}/api/workers")

    def queue_lengths(self) -> dict[str, Any]:
        """GET /api/queues/length (Flower's shape): ``{"active_queues": [{name, messages}]}``."""
        return self._request("GET", f"{self.base_url}/api/queues/length")

    def logs(self, session_id: str, **query: Any) -> dict[str, Any]:
        """One page of the session's log; ``query`` takes the API's names (level, agentId,
        limit, cursor...); None values are left out."""
        params = {name: value for name, value in query.items() if value is not None}
        return self._call("GET", f"/sessions/{session_id}/logs", params=params)

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

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """``method`` on /api/orchestrator``path``: the JSON answer."""
        return self._request(method, self.url(path), **kwargs)

    def _request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            kwargs.setdefault("timeout", self.timeout_s)
            kwargs["headers"] = {**self._auth, **kwargs.get("headers", {})}
            response = self.http.request(method, url, **kwargs)
        except requests.RequestException as exc:
            raise ApiUnreachable(self.base_url, describe(exc)) from exc
        if response.status_code >= 400:
            raise api_error(response)
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(response.status_code, "invalid_response", "not JSON") from exc

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
            try:
                response = self._open_stream(session_id, parser.last_event_id)
            except ApiUnreachable:
                failures += 1
                if failures >= MAX_RECONNECT_FAILURES:
                    raise
                self._pause(parser, failures)
                continue
            failures = 0
            parser.reset()
            resumed_after = parser.last_event_id
            finished, dropped = yield from self._read_stream(response, parser)
            if finished:
                return
            quiet = not dropped and parser.last_event_id == resumed_after
            if quiet and self.session(session_id)["status"] in SESSION_TERMINAL:
                return
            self._pause(parser, 1)

    def _open_stream(self, session_id: str, last_event_id: str | None) -> requests.Response:
        headers = {"Accept": "text/event-stream", **self._auth}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        try:
            response = self.http.get(
                self.url(f"/sessions/{session_id}/events"),
                headers=headers,
                stream=True,
                timeout=(CONNECT_TIMEOUT_S, STREAM_READ_TIMEOUT_S),
            )
        except requests.RequestException as exc:
            raise ApiUnreachable(self.base_url, describe(exc)) from exc
        if response.status_code >= 400:
            error = api_error(response)
            response.close()
            if error.status == 404 and error.code != "session_not_found":
                raise EventsUnavailable(404, error.code, error.message, error.details)
            if error.status >= 500:
                raise ApiUnreachable(self.base_url, str(error))
            raise error
        return response

    def _read_stream(
        self, response: requests.Response, parser: SseParser
    ) -> Generator[SseEvent, None, tuple[bool, bool]]:
        """Yield one connection's events; return (saw the final event, connection dropped)."""
        with response:
            try:
                for line in split_lines(arriving_bytes(response)):
                    event = parser.feed(line)
                    if event is None:
                        continue
                    yield event
                    if event.event == FINAL_EVENT:
                        return True, False
            except (requests.RequestException, urllib3.exceptions.HTTPError):
                return False, True
        return False, False

    def _pause(self, parser: SseParser, failures: int) -> None:
        """Wait before reconnecting: the server's ``retry`` if it sent one, growing with
        consecutive failures so a restarting API is not hammered."""
        delay_s = parser.retry_ms / 1000 if parser.retry_ms is not None else self.reconnect_delay_s
        time.sleep(delay_s * failures)


def retrying_session() -> requests.Session:
    """A session whose GETs are retried (twice, briefly) when a connection fails before an
    answer: a pooled keep-alive connection the server has just closed, an API restarting.
    POST /orchestrate is retried only when it cannot have reached the server."""
    retry = Retry(
        total=GET_RETRIES,
        connect=GET_RETRIES,
        read=GET_RETRIES,
        status=0,
        allowed_methods=frozenset({"GET"}),
        backoff_factor=0.1,
    )
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session
