"""The client commands (`meowstik submit`, `status`, `logs`) against a scripted API served by a
real HTTP server on loopback: SSE parsing, resuming a dropped stream, progress, exit codes."""

from __future__ import annotations

import argparse
import io
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cli import api_client, client_commands
from cli.api_client import ApiClient
from cli.api_errors import ApiError, ApiUnreachable, EventsUnavailable
from cli.client_commands import Progress, ProgressView, render_bar
from meowstik import _core, sse
from meowstik.sse import SseParser
from tests.support.cluster import wait_for
from tests.support.http_servers import scripted_api

SID = "sess-1"


@dataclass
class Stream:
    """One /events connection: the Last-Event-ID it must carry and its body, framed by closing
    the connection (HTTP/1.0) or in chunks (HTTP/1.1, as gunicorn sends). ``drop`` breaks the
    body off: short of its Content-Length, or without the final chunk. ``gate``, when set,
    holds ``after_gate`` back until the test opens it."""

    expect_last_id: str | None
    body: str
    drop: bool = False
    chunked: bool = False
    gate: threading.Event | None = None
    after_gate: str = ""


@dataclass
class FakeApi:
    """Scripted answers; every request is recorded as (method, path, query, headers, body)."""

    snapshots: list[dict] = field(default_factory=list)  # GET session, in turn; the last repeats
    streams: list[Stream] = field(default_factory=list)  # /events connections, in turn
    log_pages: dict[str | None, dict] = field(default_factory=dict)  # by ?cursor=
    orchestrate: tuple[int, dict] | None = None
    events_error: tuple[int, dict] | None = None  # /events answers this instead of a stream
    drops: int = 0  # so many requests (not /events) are served, then their connection closed
    sessions_by_key: dict[str, str] = field(default_factory=dict)  # the API's Idempotency-Keys
    requests: list[tuple] = field(default_factory=list)
    url: str = ""

    def answer(
        self, method: str, path: str, query: dict, headers: dict, body: Any
    ) -> tuple[int, Any]:
        parts = path.removeprefix("/api/orchestrator/").split("/")
        if method == "POST" and parts == ["orchestrate"]:
            return self.orchestrate or (202, self.snapshots[0] | self.submitted(headers))
        if method == "GET" and parts[0] == "sessions" and len(parts) == 2:
            return 200, self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0]
        if method == "GET" and parts[-1:] == ["logs"]:
            return 200, self.log_pages[query.get("cursor")]
        return 404, error("not_found", f"no route {method} {path}")

    def submitted(self, headers: dict) -> dict:
        """A new session for a new Idempotency-Key, the first one's again for a known key."""
        key = headers.get("Idempotency-Key") or f"no key {len(self.requests)}"
        sid = self.sessions_by_key.setdefault(key, f"sess-{len(self.sessions_by_key) + 1}")
        return {"sessionId": sid}


def error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message, "details": {}}}


class FakeHandler(BaseHTTPRequestHandler):
    """Serves the FakeApi its server carries as ``server.api``."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def _handle(self, method: str) -> None:
        api = self.server.api
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.loads(raw) if raw else None
        api.requests.append((method, url.path, query, dict(self.headers), body))
        if url.path.endswith("/events"):
            return self._json(*api.events_error) if api.events_error else self._stream()
        answer = api.answer(method, url.path, query, dict(self.headers), body)
        if api.drops:  # done, but the answer is lost with the connection
            api.drops -= 1
            self.close_connection = True
            return None
        self._json(*answer)

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self) -> None:
        stream = self.server.api.streams.pop(0)
        if self.headers.get("Last-Event-ID") != stream.expect_last_id:
            got = self.headers.get("Last-Event-ID")
            return self._json(409, error("bad_resume", f"Last-Event-ID {got!r}"))
        data = stream.body.encode()
        if stream.chunked:
            self.protocol_version, self.close_connection = "HTTP/1.1", True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if stream.chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
        elif stream.drop:  # promise more than is sent
            self.send_header("Content-Length", str(len(data) + 1000))
        self.end_headers()
        self._send(data, stream.chunked)
        if stream.gate is not None:
            stream.gate.wait(30)
            self._send(stream.after_gate.encode(), stream.chunked)
        if stream.chunked and not stream.drop:
            self.wfile.write(b"0\r\n\r\n")

    def _send(self, data: bytes, chunked: bool) -> None:
        if chunked and data:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        self.wfile.write(data)
        self.wfile.flush()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def api():
    with scripted_api(FakeHandler, FakeApi()) as fake:
        yield fake


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    """Reconnect and poll at once: the fake answers immediately, pauses only slow the tests."""
    monkeypatch.setattr(api_client, "RECONNECT_DELAY_S", 0.0)
    monkeypatch.setattr(api_client, "POLL_INTERVAL_S", 0.0)
    monkeypatch.setattr(_core, "backoff_s", lambda attempt, retry_after=None: 0.0)


def snapshot(status: str, steps: dict[str, tuple], errors: list[dict] | None = None) -> dict:
    """A session snapshot; ``steps`` maps id to (status, agent, attempts)."""
    done = [s for s, (st, *_) in steps.items() if st == "completed"]
    failed = [s for s, (st, *_) in steps.items() if st == "failed"]
    return {
        "sessionId": SID,
        "status": status,
        "plan": {"steps": [{"id": s} for s in steps]},
        "completedTasks": len(done),
        "failedTasks": len(failed),
        "totalTasks": len(steps),
        "startTime": "2025-01-01T10:00:00.000Z",
        **({"endTime": "2025-01-01T10:00:01.500Z"} if status in {"completed", "failed"} else {}),
        "errors": errors or [],
        "steps": {
            s: {"status": st, "agentId": agent, "attempts": attempts}
            | ({"startedAt": "2025-01-01T10:00:00.250Z"} if agent else {})
            | ({"finishedAt": "2025-01-01T10:00:00.500Z"} if st in {"completed", "failed"} else {})
            for s, (st, agent, attempts) in steps.items()
        },
    }


def frame(event_id: str, kind: str, task: str | None, counts: tuple, status="executing", **more):
    data = {"id": f"log-{event_id}", "timestamp": "T", "message": kind, "level": "info"}
    data["source"] = "task"
    data |= {"taskId": task} if task else {}
    data |= {"type": kind, **more}
    data["progress"] = dict(
        zip(("completedTasks", "failedTasks", "totalTasks"), counts, strict=True), status=status
    )
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data)}\n\n"


def cli(api: FakeApi | None, *argv: str) -> int:
    """Parse and run like `meowstik ...` (cli/main.py) does, against ``api`` unless None."""
    parser = argparse.ArgumentParser(prog="meowstik")
    client_commands.add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([*argv, *(["--api-url", api.url] if api else [])])
    return args.handler(args)


# --- the SSE parser ---------------------------------------------------------------------------


def feed_all(parser: SseParser, text: str) -> list:
    return [e for e in map(parser.feed, text.split("\n")) if e is not None]


def test_data_lines_join_with_newlines_and_id_and_event_fields_are_kept():
    events = feed_all(SseParser(), 'id: 7-0\nevent: step.started\ndata: {"a":\ndata:  1}\n\n')
    assert [(e.id, e.event, e.data) for e in events] == [("7-0", "step.started", '{"a":\n 1}')]
    assert events[0].json() == {"a": 1}


def test_comments_empty_events_and_unknown_fields_dispatch_nothing():
    parser = SseParser()
    assert feed_all(parser, ": keep-alive\n\nevent: x\n\nfoo: bar\n: more\n\n") == []
    (event,) = feed_all(parser, "data\n\n")  # a field without colon has an empty value
    assert (event.event, event.data) == ("message", "")


def test_the_last_event_id_persists_until_changed_and_retry_is_read():
    parser = SseParser()
    first, second = feed_all(parser, "id: 1-0\nretry: 250\ndata: a\n\ndata: b\n\n")
    assert (first.id, second.id, parser.retry_ms) == ("1-0", "1-0", 250)
    feed_all(parser, "id: bad\0id\nretry: soon\n\n")  # ignored, as the spec says
    assert (parser.last_event_id, parser.retry_ms) == ("1-0", 250)


def test_a_partial_event_from_a_dropped_connection_is_forgotten_with_its_id():
    parser = SseParser()
    feed_all(parser, "id: 1-0\ndata: a\n\nid: 2-0\ndata: half")
    assert parser.last_event_id == "1-0"  # resuming after 2-0 would skip it
    parser.reset()
    (event,) = feed_all(parser, "data: fresh\n\n")
    assert (event.id, event.data) == ("1-0", "fresh")


def test_lines_split_across_chunks_keep_their_bytes_and_never_gain_a_blank_line():
    chunks = [b"data: caf\xc3", b"\xa9\r", b"\n\r\n", b"data: tail-without-newline"]
    assert list(sse.split_lines(chunks)) == ["data: café", ""]


# --- the event stream against the fake API --------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["close-delimited", "chunked"])
def test_a_dropped_stream_is_resumed_with_last_event_id_and_loses_and_repeats_nothing(api, chunked):
    # Given a stream that breaks off after two events and half of a third
    first = frame("1-0", "session.created", None, (0, 0, 2)) + frame(
        "2-0", "step.started", "A", (0, 0, 2)
    )
    api.streams = [
        Stream(None, first + 'id: 3-0\ndata: {"half', drop=True, chunked=chunked),
        Stream("2-0", frame("3-0", "step.completed", "A", (1, 0, 2)), chunked=chunked),
        Stream("3-0", frame("4-0", "session.finished", None, (2, 0, 2), "completed")),
    ]
    api.snapshots = [snapshot("executing", {"A": ("completed", "e", 1), "B": ("running", "e", 1)})]
    # When the client follows it
    events = list(ApiClient(api.url).follow_events(SID))
    # Then every event arrives once, in order, each reconnection naming the last one received
    assert [e.id for e in events] == ["1-0", "2-0", "3-0", "4-0"]
    resumed = [r[3].get("Last-Event-ID") for r in api.requests if r[1].endswith("/events")]
    assert resumed == [None, "2-0", "3-0"]


def test_a_stream_that_closes_for_a_finished_session_without_a_final_event_ends(api):
    api.streams = [
        Stream(None, frame("1-0", "step.completed", "A", (1, 0, 1), "completed")),
        Stream("1-0", ""),  # nothing after 1-0: the session is over, the stream with it
    ]
    api.snapshots = [snapshot("completed", {"A": ("completed", "e", 1)})]
    assert [e.id for e in ApiClient(api.url).follow_events(SID)] == ["1-0"]
    assert api.streams == [] and [r[1].rsplit("/", 1)[-1] for r in api.requests][-1] == SID


def test_an_api_without_the_events_route_is_told_apart_from_an_unknown_session(api):
    api.events_error = (404, error("not_found", "the requested URL was not found"))
    with pytest.raises(EventsUnavailable):
        next(ApiClient(api.url).follow_events(SID))
    api.events_error = (404, error("session_not_found", f"no session with id {SID!r}"))
    with pytest.raises(ApiError, match="no session with id") as unknown:
        next(ApiClient(api.url).follow_events(SID))
    assert not isinstance(unknown.value, EventsUnavailable)


def test_an_api_that_keeps_failing_the_stream_is_given_up_on(api):
    api.events_error = (503, error("store_unavailable", "Redis did not answer"))
    with pytest.raises(ApiUnreachable, match="Redis did not answer"):
        next(ApiClient(api.url).follow_events(SID))
    assert len(api.requests) == api_client.MAX_RECONNECT_FAILURES


def test_nothing_listening_is_an_unreachable_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    server.server_close()
    with pytest.raises(ApiUnreachable, match="cannot reach the API"):
        ApiClient(url).session(SID)


# --- progress -----------------------------------------------------------------------------------


def test_the_bar_fills_with_done_steps_and_names_the_running_ones():
    assert render_bar(Progress(3, 0, 5, "executing", ("step-4",))) == (
        "[######----] 3/5 steps  running: step-4"
    )
    assert render_bar(Progress(1, 1, 2, "failed")) == "[##########] 2/2 steps (1 failed)"
    many = render_bar(Progress(0, 0, 5, "executing", ("a", "b", "c", "d", "e")))
    assert many.endswith("running: a, b, c +2 more")
    assert render_bar(Progress(0, 0, 0, "executing")) == "[----------] 0/0 steps"


def test_on_a_terminal_one_line_is_rewritten_and_notices_print_above_it():
    out = io.StringIO()
    view = ProgressView(out, tty=True)
    view.show(Progress(0, 0, 2, "executing", ("long-step-name",)))
    view.show(Progress(1, 0, 2, "executing"))
    view.show(Progress(1, 1, 2, "failed"), notice="B: Step failed: boom")
    view.close()
    first, second = (
        render_bar(Progress(0, 0, 2, "executing", ("long-step-name",))),
        "[#####-----] 1/2 steps",
    )
    assert out.getvalue().startswith(f"\r{first}\r{second}{' ' * (len(first) - len(second))}")
    assert out.getvalue().endswith("\rB: Step failed: boom\n\r[##########] 2/2 steps (1 failed)\n")


def test_without_a_terminal_each_change_is_one_plain_line():
    out = io.StringIO()
    view = ProgressView(out, tty=False)
    for progress in [Progress(0, 0, 1, "executing")] * 2 + [Progress(1, 0, 1, "completed")]:
        view.show(progress)
    view.close()
    assert out.getvalue() == "[----------] 0/1 steps\n[##########] 1/1 steps\n"


@pytest.mark.parametrize("chunked", [False, True], ids=["close-delimited", "chunked"])
def test_progress_shows_live_before_the_session_ends(api, chunked):
    gate = threading.Event()
    body = frame("1-0", "step.started", "A", (0, 0, 1))
    final = frame("2-0", "session.finished", None, (1, 0, 1), "completed")
    api.streams = [Stream(None, body, chunked=chunked, gate=gate, after_gate=final)]
    out = io.StringIO()
    follower = threading.Thread(
        target=client_commands.follow, args=(ApiClient(api.url), SID, ProgressView(out, False))
    )
    follower.start()
    wait_for(lambda: "running: A" in out.getvalue(), 10, what="the first progress line")
    assert "1/1" not in out.getvalue()
    gate.set()
    follower.join(10)
    assert out.getvalue().endswith("[##########] 1/1 steps\n")


# --- commands and exit codes ---------------------------------------------------------------------


def follow_script(api, final: dict, *events: str) -> None:
    api.orchestrate = (202, snapshot("executing", {s: ("queued", None, 0) for s in final["steps"]}))
    api.snapshots = [final]
    api.streams = [Stream(None, "".join(events))]


def test_submit_follow_shows_progress_and_a_summary_and_exits_0_when_completed(
    api, tmp_path, capsys
):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"steps": [{"id": "A", "requiredCapabilities": ["echo_work"]}]}))
    follow_script(
        api,
        snapshot("completed", {"A": ("completed", "echo-001", 1)}),
        frame("1-0", "step.started", "A", (0, 0, 1)),
        frame("2-0", "step.completed", "A", (1, 0, 1)),
        frame("3-0", "session.finished", None, (1, 0, 1), "completed"),
    )
    options = f"--plan {plan} --user u --follow".split()
    code = cli(api, "submit", "do it", *options, "--context", '{"k": 1}')
    out = capsys.readouterr().out
    assert code == 0
    assert "[----------] 0/1 steps  running: A\n[##########] 1/1 steps\n" in out
    assert f"session {SID}: completed in 1.50s, 1/1 steps completed" in out
    assert "A     completed  echo-001  1         0.25s" in out
    assert api.requests[0][4] == {
        "goal": "do it",
        "userId": "u",
        "initialContext": {"k": 1},
        "plan": json.loads(plan.read_text()),
    }


def test_submit_follow_exits_1_on_failure_and_shows_the_error(api, capsys):
    error = "this agent always fails"
    errors = [
        dict(stepId="B", agentId="broken-001", attempt=1, errorType="Permanent", message=error)
    ]
    follow_script(
        api,
        snapshot("failed", {"B": ("failed", "broken-001", 1)}, errors),
        frame("1-0", "step.failed", "B", (0, 1, 1), agentId="broken-001", error=error),
        frame("2-0", "session.finished", None, (0, 1, 1), "failed"),
    )
    code = cli(api, "submit", "x", "--follow")
    out = capsys.readouterr().out
    assert code == 1
    assert "B (broken-001): step.failed: this agent always fails\n" in out
    assert "B (broken-001, attempt 1): Permanent: this agent always fails" in out


def test_a_cancelled_session_exits_2(api, capsys):
    follow_script(
        api,
        snapshot("cancelled", {"A": ("cancelled", None, 0)}),
        frame("1-0", "session.finished", None, (0, 0, 1), "cancelled"),
    )
    assert cli(api, "submit", "x", "--follow") == 2


def test_submit_without_follow_prints_the_session_id_and_exits_0(api, capsys):
    api.snapshots = [snapshot("executing", {"A": ("queued", None, 0)})]
    assert cli(api, "submit", "x") == 0
    assert capsys.readouterr().out.startswith(f"session {SID}: executing\nfollow it: ")


def test_follow_polls_the_session_when_the_api_has_no_event_stream(api, capsys):
    api.events_error = (404, error("not_found", "the requested URL was not found"))
    api.snapshots = [
        snapshot("executing", {"A": ("queued", None, 0)}),
        snapshot("executing", {"A": ("running", "e", 1)}),
        snapshot("completed", {"A": ("completed", "e", 1)}),
    ]
    assert cli(api, "submit", "x", "--follow", "--json") == 0
    assert json.loads(capsys.readouterr().out)["status"] == "completed"
    paths = [r[1].rsplit("/", 1)[-1] for r in api.requests]
    assert paths[:2] == ["orchestrate", "events"] and paths[2:5] == [SID] * 3


def test_submit_sends_an_idempotency_key_so_a_resend_after_a_lost_answer_makes_one_session(
    api, capsys
):
    # Given an API that makes the session but loses its answer with the connection
    api.snapshots = [snapshot("executing", {"A": ("queued", None, 0)})]
    api.drops = 1
    # When the CLI submits
    assert cli(api, "submit", "x") == 0
    # Then it sent the request again with the same key, and one session was made and shown
    keys = [r[3].get("Idempotency-Key") for r in api.requests]
    assert len(keys) == 2 and keys[0] == keys[1] and len(keys[0]) == 36
    assert api.sessions_by_key == {keys[0]: "sess-1"}
    assert capsys.readouterr().out.startswith("session sess-1: executing\n")


def test_each_submit_has_a_key_of_its_own(api, capsys):
    api.snapshots = [snapshot("executing", {"A": ("queued", None, 0)})]
    assert cli(api, "submit", "x") == 0 and cli(api, "submit", "x") == 0
    assert sorted(api.sessions_by_key.values()) == ["sess-1", "sess-2"]


def test_a_get_whose_connection_drops_before_the_answer_is_sent_again(api, capsys):
    api.snapshots = [snapshot("executing", {"A": ("running", "e", 1)})]
    api.drops = api_client.GET_RETRIES
    assert cli(api, "status", SID) == 0
    assert [r[1] for r in api.requests] == [f"/api/orchestrator/sessions/{SID}"] * 3


def test_a_post_that_may_have_been_received_is_not_sent_again(api):
    # an answer to a step carries no Idempotency-Key: a resend could act twice
    api.drops = 1
    with pytest.raises(ApiUnreachable, match="connection refused or dropped"):
        ApiClient(api.url).provide_input(SID, "A", 1)
    assert [r[1] for r in api.requests] == [f"/api/orchestrator/sessions/{SID}/input"]


def test_an_api_error_exits_3_with_the_apis_message_on_stderr(api, capsys):
    api.orchestrate = (422, error("plan_invalid", "step B depends on unknown step Z"))
    assert cli(api, "submit", "x", "--follow") == 3
    assert "step B depends on unknown step Z" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--context", "{oops"], "--context is not valid JSON"),
        (["--context", "[1]"], "--context must be a JSON object, not list"),
        (["--plan", "/nonexistent/plan.json"], "cannot read --plan"),
    ],
)
def test_bad_input_exits_3_before_anything_is_sent(api, capsys, argv, message):
    assert cli(api, "submit", "x", *argv) == 3
    assert message in capsys.readouterr().err and api.requests == []


def test_ctrl_c_while_following_exits_130_and_leaves_the_session_running(api, capsys, monkeypatch):
    def interrupted(self, session_id):
        yield from ()
        raise KeyboardInterrupt

    monkeypatch.setattr(ApiClient, "follow_events", interrupted)
    api.snapshots = [snapshot("executing", {"A": ("running", "e", 1)})]
    assert cli(api, "submit", "x", "--follow") == 130
    assert (
        f"curl -X POST {api.url}/api/orchestrator/sessions/{SID}/cancel" in capsys.readouterr().err
    )
    assert [r[1] for r in api.requests] == ["/api/orchestrator/orchestrate"]


def test_status_prints_a_table_of_steps(api, capsys, monkeypatch):
    monkeypatch.setenv("MEOWSTIK_API_URL", api.url)
    api.snapshots = [
        snapshot("executing", {"A": ("completed", "echo-001", 2), "B": ("pending", None, 0)})
    ]
    assert cli(None, "status", SID) == 0
    assert capsys.readouterr().out.splitlines()[2:] == [
        "STEP  STATUS     AGENT     ATTEMPTS  DURATION",
        "A     completed  echo-001  2         0.25s",
        "B     pending    -         0         -",
    ]


def test_logs_pages_through_with_the_cursor_up_to_the_limit(api, capsys):
    entry = {"timestamp": "T", "level": "warn", "source": "task", "message": "m", "taskId": "A"}
    api.log_pages = {
        None: {"logs": [entry] * 2, "nextCursor": "log-2-0"},
        "log-2-0": {"logs": [entry | {"error": "e"}], "nextCursor": "log-3-0"},
    }
    assert cli(api, "logs", SID, "--level", "warn", "--limit", "3") == 0
    assert capsys.readouterr().out.splitlines() == ["T WARN     task         [A] m"] * 2 + [
        "T WARN     task         [A] m  error: e"
    ]
    assert [(r[2]["limit"], r[2]["level"], r[2].get("cursor")) for r in api.requests] == [
        ("3", "warn", None),
        ("1", "warn", "log-2-0"),
    ]


def test_logs_follow_prints_live_entries_at_or_above_the_level(api, capsys):
    api.streams = [
        Stream(
            None,
            frame("1-0", "step.started", "A", (0, 0, 1))
            + frame("2-0", "session.finished", None, (1, 0, 1), "completed", level="warn"),
        )
    ]
    assert cli(api, "logs", SID, "--follow", "--level", "warn") == 0
    assert capsys.readouterr().out.splitlines() == ["T WARN     task         session.finished"]


def test_logs_follow_polls_the_log_when_the_api_has_no_event_stream(api, capsys):
    api.events_error = (404, error("not_found", "the requested URL was not found"))
    entry = {"id": "log-1-0", "timestamp": "T", "level": "info", "source": "task", "message": "m"}
    api.log_pages = {None: {"logs": [entry], "nextCursor": None}, "log-1-0": {"logs": []}}
    api.snapshots = [snapshot("executing", {}), snapshot("completed", {})]
    assert cli(api, "logs", SID, "--follow") == 0
    assert capsys.readouterr().out == "T INFO     task         m\n"
    assert [r[2].get("cursor") for r in api.requests if r[1].endswith("/logs")] == [None, "log-1-0"]


def test_logs_refuses_a_limit_with_follow(api, capsys):
    assert cli(api, "logs", SID, "--follow", "--limit", "5") == 3
    assert "--limit applies without --follow" in capsys.readouterr().err
