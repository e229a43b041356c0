"""`meowstik cancel`, `input`, `agents`, `queues` and `workers`, and the API token every client
command sends, against a scripted API served by a real HTTP server on loopback: the requests
actually sent (method, path, body, Authorization), what is printed, and the exit codes."""

from __future__ import annotations

import io
import json
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cli import api_client
from cli.main import main
from cli.rendering import format_rate, format_run_time
from meowstik import _core
from tests.support.http_servers import scripted_api

SID = "sess-1"
TOKEN = "s3cret-token.value"
ORCH = "/api/orchestrator"


@dataclass
class Sent:
    method: str
    path: str
    authorization: str | None
    body: Any
    query: str = ""


@dataclass
class ScriptedApi:
    """Answers by (method, path): a (status, JSON) pair, or (status, text/event-stream body).
    Anything unscripted is the API's 404. Every request is recorded."""

    routes: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    url: str = ""

    def on(self, method: str, path: str, status: int, payload: Any) -> None:
        self.routes[(method, path)] = (status, payload)


def api_error(status: int, code: str, message: str) -> tuple[int, dict]:
    return status, {"error": {"code": code, "message": message, "details": {}}}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        api: ScriptedApi = self.server.api
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        api.sent.append(
            Sent(
                method,
                path,
                self.headers.get("Authorization"),
                json.loads(raw) if raw else None,
                url.query,
            )
        )
        status, payload = api.routes.get(
            (method, path), api_error(404, "not_found", f"no route {method} {path}")
        )
        if isinstance(payload, str):
            data, kind = payload.encode(), "text/event-stream"
        else:
            data, kind = json.dumps(payload).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def api():
    with scripted_api(Handler, ScriptedApi()) as scripted:
        yield scripted


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No token or URL from the environment unless a test sets one; no pauses."""
    monkeypatch.delenv("MEOWSTIK_API_TOKEN", raising=False)
    monkeypatch.delenv("MEOWSTIK_API_URL", raising=False)
    monkeypatch.setattr(api_client, "RECONNECT_DELAY_S", 0.0)
    monkeypatch.setattr(api_client, "POLL_INTERVAL_S", 0.0)
    monkeypatch.setattr(_core, "backoff_s", lambda attempt, retry_after=None: 0.0)


def cli(api: ScriptedApi, *argv: str) -> int:
    """`meowstik ...` as the entry point runs it, pointed at ``api``."""
    return main([*argv, "--api-url", api.url])


def snapshot(status: str, steps: dict[str, dict]) -> dict:
    return {
        "sessionId": SID,
        "status": status,
        "plan": {"steps": [{"id": s} for s in steps]},
        "completedTasks": sum(1 for s in steps.values() if s["status"] == "completed"),
        "failedTasks": 0,
        "totalTasks": len(steps),
        "startTime": "2025-01-01T10:00:00.000Z",
        "errors": [],
        "steps": steps,
    }


WAITING = {
    "status": "waiting_for_input",
    "attempts": 1,
    "agentId": "asker-001",
    "inputRequest": {
        "question": "Deploy to production?",
        "schema": {"type": "object", "required": ["approve"]},
        "deadline": "2025-01-01T11:00:00.000Z",
        "onTimeout": "default",
        "default": {"approve": False},
    },
}


def agent(
    agent_id: str, status: str = "active", load=(0, 4), circuit=None, caps=("echo",), metrics=None
):
    return {
        "id": agent_id,
        "name": agent_id,
        "type": "tester",
        "status": status,
        "currentLoad": load[0],
        "maxLoad": load[1],
        "capabilities": [{"name": c, "description": ""} for c in caps],
        **({"circuit": circuit} if circuit is not None else {}),
        **({"metrics": metrics} if metrics is not None else {}),
    }


def day_metrics(agent_id: str, succeeded: int, ended: int, p50=None, p95=None) -> dict:
    """GET /agents?metrics=24h's ``metrics`` of one agent (successRate absent before any run
    ended, as the API leaves out None)."""
    rate = {"successRate": round(succeeded / ended, 4)} if ended else {}
    run = {"count": ended, **({"p50S": p50, "p95S": p95} if p50 is not None else {})}
    return {"agentId": agent_id, "window": "24h", "started": ended, "succeeded": succeeded,
            "failed": ended - succeeded, **rate, "run": run, "queueWait": {"count": 0}}  # fmt: skip


def worker(queues: list[str], alive: bool = True, agents=("echo-001",)) -> dict:
    return {
        "active_queues": [{"name": q, "routing_key": q} for q in queues],
        "stats": {"pid": 4242, "pool": {"max-concurrency": 4, "implementation": "prefork"}},
        "lastHeartbeat": "2025-01-01T10:00:00.000Z",
        "alive": alive,
        "status": "online" if alive else "offline",
        "agents": list(agents),
    }


# --- cancel ----------------------------------------------------------------------------------


def test_cancel_posts_to_the_cancel_endpoint_and_prints_the_resulting_status(api, capsys):
    api.on(
        "POST",
        f"{ORCH}/sessions/{SID}/cancel",
        200,
        snapshot("cancelled", {"A": {"status": "cancelled", "attempts": 0}}),
    )
    assert cli(api, "cancel", SID) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"session {SID}: cancelled, 0/1 steps completed"
    assert out[3] == "A     cancelled  -      0         -"
    assert [(s.method, s.path, s.body) for s in api.sent] == [
        ("POST", f"{ORCH}/sessions/{SID}/cancel", None)
    ]


def test_cancel_json_prints_the_snapshot(api, capsys):
    cancelled = snapshot("cancelled", {})
    api.on("POST", f"{ORCH}/sessions/{SID}/cancel", 200, cancelled)
    assert cli(api, "cancel", SID, "--json") == 0
    assert json.loads(capsys.readouterr().out) == cancelled


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (404, "session_not_found", "no session with id 'sess-1'; it may never have existed"),
        (409, "session_finished", "session 'sess-1' already completed; only a running session"),
    ],
)
def test_cancel_an_unknown_or_finished_session_exits_3_with_the_apis_message(
    api, capsys, status, code, message
):
    api.routes[("POST", f"{ORCH}/sessions/{SID}/cancel")] = api_error(status, code, message)
    assert cli(api, "cancel", SID) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"meowstik cancel: API error {status} {code}: {message}\n"


# --- input -----------------------------------------------------------------------------------


def test_input_without_a_step_lists_the_waiting_steps_with_question_and_schema(api, capsys):
    steps = {"A": WAITING, "B": {"status": "pending", "attempts": 0}}
    api.on("GET", f"{ORCH}/sessions/{SID}", 200, snapshot("waiting_for_input", steps))
    assert cli(api, "input", SID) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"session {SID}: waiting_for_input; 1 waiting for input",
        "",
        "A: Deploy to production?",
        '  schema: {"type": "object", "required": ["approve"]}',
        '  deadline: 2025-01-01T11:00:00.000Z, then the default {"approve": false} is used',
        f"  answer: meowstik input {SID} A '<JSON>'",
    ]
    assert [(s.method, s.path) for s in api.sent] == [("GET", f"{ORCH}/sessions/{SID}")]


def test_input_without_a_step_says_when_nothing_waits_and_lists_as_json(api, capsys):
    steps = {"A": WAITING, "B": {"status": "running", "attempts": 1}}
    api.on("GET", f"{ORCH}/sessions/{SID}", 200, snapshot("waiting_for_input", steps))
    assert cli(api, "input", SID, "--json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "sessionId": SID,
        "status": "waiting_for_input",
        "waiting": {"A": WAITING["inputRequest"]},
    }
    api.on("GET", f"{ORCH}/sessions/{SID}", 200, snapshot("executing", {"B": steps["B"]}))
    assert cli(api, "input", SID) == 0
    assert capsys.readouterr().out == f"session {SID}: executing; no step is waiting for input\n"


def test_input_sends_the_json_value_in_the_apis_body_and_prints_the_outcome(api, capsys):
    answered = snapshot("executing", {"A": {"status": "queued", "attempts": 1}})
    api.on("POST", f"{ORCH}/sessions/{SID}/input", 200, answered)
    assert cli(api, "input", SID, "A", '{"approve": true, "note": "ok"}') == 0
    assert capsys.readouterr().out == f"answered A: step queued, session {SID} executing\n"
    assert [(s.method, s.path, s.body) for s in api.sent] == [
        (
            "POST",
            f"{ORCH}/sessions/{SID}/input",
            {"stepId": "A", "value": {"approve": True, "note": "ok"}},
        )
    ]


@pytest.mark.parametrize(("text", "value"), [('"yes"', "yes"), ("-1", -1), ("null", None)])
def test_input_value_is_any_json_not_only_an_object(api, capsys, text, value):
    api.on("POST", f"{ORCH}/sessions/{SID}/input", 200, snapshot("executing", {}))
    assert cli(api, "input", SID, "A", text) == 0
    assert api.sent[0].body == {"stepId": "A", "value": value}


def test_input_reads_the_value_from_a_file_or_stdin(api, capsys, tmp_path, monkeypatch):
    api.on("POST", f"{ORCH}/sessions/{SID}/input", 200, snapshot("executing", {}))
    answer = tmp_path / "answer.json"
    answer.write_text('{"approve": false}\n')
    assert cli(api, "input", SID, "A", "--file", str(answer), "--json") == 0
    assert json.loads(capsys.readouterr().out)["sessionId"] == SID
    monkeypatch.setattr("sys.stdin", io.StringIO("[1, 2]"))
    assert cli(api, "input", SID, "B", "--file", "-") == 0
    assert [s.body for s in api.sent] == [
        {"stepId": "A", "value": {"approve": False}},
        {"stepId": "B", "value": [1, 2]},
    ]


def test_an_answer_the_schema_refuses_exits_3_with_the_apis_422_message(api, capsys):
    message = (
        "the answer for step 'A' does not match the schema it asked for: 'approve' is a "
        "required property (at value); send a value that does"
    )
    api.routes[("POST", f"{ORCH}/sessions/{SID}/input")] = api_error(422, "invalid_input", message)
    assert cli(api, "input", SID, "A", "{}") == 3
    captured = capsys.readouterr()
    assert captured.err == f"meowstik input: API error 422 invalid_input: {message}\n"
    assert captured.out == "" and len(api.sent) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["A", "yes"], "VALUE is not valid JSON"),
        (["A", "{'approve': true}"], "VALUE is not valid JSON"),
        (["A"], "give the answer as VALUE (JSON text) or with --file PATH"),
        (["A", "1", "--file", "x.json"], "give the answer as VALUE (JSON text) or with --file"),
        (["A", "--file", "/no/such/answer.json"], "cannot read --file /no/such/answer.json"),
        (["--file", "x.json"], "--file is the answer for a STEP"),
    ],
)
def test_bad_input_exits_3_before_anything_is_sent(api, capsys, argv, message):
    assert cli(api, "input", SID, *argv) == 3
    assert message in capsys.readouterr().err
    assert api.sent == []


# --- agents ----------------------------------------------------------------------------------


def test_agents_prints_a_table_with_load_circuit_success_run_times_and_capabilities(api, capsys):
    listing = {
        "agents": [
            agent(
                "echo-001",
                load=(1, 4),
                circuit={"state": "closed"},
                caps=("echo", "copy"),
                metrics=day_metrics("echo-001", 2, 3, p50=0.0125, p95=0.3),
            ),
            agent(
                "http-001",
                "draining",
                load=(0, 2),
                circuit={"state": "open", "openUntil": "2025-01-01T10:00:30.000Z"},
                metrics=day_metrics("http-001", 49, 50, p50=1.5, p95=187.2),
            ),
            agent("idle-001", load=(0, 1), caps=("idle",), metrics=day_metrics("idle-001", 0, 0)),
            agent("old-001", "offline", load=(0, 1), caps=("legacy",)),  # no metrics sent
        ],
        "count": 4,
    }
    api.on("GET", f"{ORCH}/agents", 200, listing)
    assert cli(api, "agents") == 0
    assert capsys.readouterr().out.splitlines() == [
        "ID        TYPE    STATUS    LOAD  CIRCUIT                              "
        "SUCCESS     P50     P95  CAPABILITIES",
        "echo-001  tester  active    1/4   closed                               "
        "  66.7%  12.5ms   300ms  echo,copy",
        "http-001  tester  draining  0/2   open until 2025-01-01T10:00:30.000Z  "
        "    98%   1.50s  3m 07s  echo",
        "idle-001  tester  active    0/1   -                                    "
        "      -       -       -  idle",
        "old-001   tester  offline   0/1   -                                    "
        "      -       -       -  legacy",
    ]
    # one request: the listing with each agent's metrics over the last 24 hours
    assert [(s.method, s.path, s.query) for s in api.sent] == [
        ("GET", f"{ORCH}/agents", "metrics=24h")
    ]
    assert cli(api, "agents", "--json") == 0
    assert json.loads(capsys.readouterr().out) == listing


@pytest.mark.parametrize(
    ("rate", "shown"),
    [(None, "-"), (0, "0%"), (0.0004, "0.1%"), (0.6, "60%"), (0.6667, "66.7%"),
     (0.9999, "99.9%"), (1.0, "100%")],
)  # fmt: skip
def test_a_success_rate_is_a_percentage_never_rounded_to_all_or_nothing(rate, shown):
    assert format_rate(rate) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0, "0ms"), (0.0025, "2.5ms"), (0.35, "350ms"), (0.9996, "1.00s"),
     (12.3, "12.3s"), (300, "5m 00s")],
)  # fmt: skip
def test_a_run_time_is_milliseconds_under_a_second_else_a_duration(seconds, shown):
    assert format_run_time(seconds) == shown


def test_agents_set_status_patches_the_agent_with_flags_before_or_after_it(api, capsys):
    path = f"{ORCH}/agents/echo-001"
    api.on("PATCH", path, 200, agent("echo-001", "draining", load=(2, 4)))
    assert cli(api, "agents", "set-status", "echo-001", "draining") == 0
    assert capsys.readouterr().out == "agent echo-001: draining (load 2)\n"
    # the parent's --api-url, --api-token and --json survive the subcommand
    argv = ["agents", "--api-url", api.url, "--api-token", TOKEN, "--json"]
    assert main([*argv, "set-status", "echo-001", "draining"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "draining"
    assert [(s.method, s.path, s.body, s.authorization) for s in api.sent] == [
        ("PATCH", path, {"status": "draining"}, None),
        ("PATCH", path, {"status": "draining"}, f"Bearer {TOKEN}"),
    ]


def test_agents_set_status_refuses_offline_and_reports_an_unknown_agent(api, capsys):
    assert cli(api, "agents", "set-status", "echo-001", "offline") == 3
    assert "invalid choice: 'offline'" in capsys.readouterr().err
    assert api.sent == []
    message = "no agent with id 'nope'; GET /api/orchestrator/agents lists registered agents."
    api.routes[("PATCH", f"{ORCH}/agents/nope")] = api_error(404, "agent_not_found", message)
    assert cli(api, "agents", "set-status", "nope", "active") == 3
    assert capsys.readouterr().err == f"meowstik agents: API error 404 agent_not_found: {message}\n"


# --- queues and workers ----------------------------------------------------------------------


def test_queues_joins_queue_lengths_with_the_online_workers_consuming_them(api, capsys):
    api.on(
        "GET",
        "/api/queues/length",
        200,
        {
            "active_queues": [
                {"name": "agent.echo-001", "messages": 3},
                {"name": "q.x", "messages": 0},
            ]
        },
    )
    api.on(
        "GET",
        "/api/workers",
        200,
        {
            "w2@h": worker(["agent.echo-001"]),
            "w1@h": worker(["agent.echo-001", "q.x"], alive=False),
        },
    )
    assert cli(api, "queues") == 0
    assert capsys.readouterr().out.splitlines() == [
        "QUEUE           WAITING  CONSUMERS",
        "agent.echo-001  3        w2@h",
        "q.x             0        none",
    ]
    assert cli(api, "queues", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "queues": [
            {"name": "agent.echo-001", "messages": 3, "consumers": ["w2@h"]},
            {"name": "q.x", "messages": 0, "consumers": []},
        ]
    }


def test_workers_prints_a_table_and_the_flower_document_as_json(api, capsys):
    workers = {"w1@h": worker(["agent.echo-001"]), "w0@h": worker([], alive=False, agents=())}
    api.on("GET", "/api/workers", 200, workers)
    assert cli(api, "workers") == 0
    assert capsys.readouterr().out.splitlines() == [
        "WORKER  STATUS   AGENTS    QUEUES          PID   PROCESSES  LAST HEARTBEAT",
        "w0@h    offline  -         -               4242  4          2025-01-01T10:00:00.000Z",
        "w1@h    online   echo-001  agent.echo-001  4242  4          2025-01-01T10:00:00.000Z",
    ]
    assert cli(api, "workers", "--json") == 0
    assert json.loads(capsys.readouterr().out) == workers
    api.on("GET", "/api/workers", 200, {})
    assert cli(api, "workers") == 0
    assert capsys.readouterr().out == "no worker has sent a heartbeat yet\n"


# --- the API token, and an API that is not there ---------------------------------------------


def test_every_command_sends_the_env_token_and_the_flag_overrides_it(api, capsys, monkeypatch):
    monkeypatch.setenv("MEOWSTIK_API_TOKEN", TOKEN)
    api.on("GET", f"{ORCH}/agents", 200, {"agents": [], "count": 0})
    api.on("GET", "/api/workers", 200, {})
    api.on("GET", "/api/queues/length", 200, {"active_queues": []})
    api.on("GET", f"{ORCH}/sessions/{SID}", 200, snapshot("executing", {}))
    api.on("GET", f"{ORCH}/templates", 200, {"templates": []})
    api.on("POST", f"{ORCH}/sessions/{SID}/cancel", 200, snapshot("cancelled", {}))
    for argv in (["agents"], ["workers"], ["queues"], ["status", SID], ["input", SID]):
        assert cli(api, *argv) == 0
    assert cli(api, "templates") == 0
    assert cli(api, "cancel", SID, "--api-token", "from-the-flag") == 0
    assert [s.authorization for s in api.sent] == [f"Bearer {TOKEN}"] * 7 + ["Bearer from-the-flag"]
    assert TOKEN not in capsys.readouterr().out


def test_without_a_token_no_authorization_header_is_sent(api):
    api.on("GET", f"{ORCH}/agents", 200, {"agents": [], "count": 0})
    assert cli(api, "agents") == 0
    assert api.sent[0].authorization is None


def test_submit_follow_sends_the_token_on_the_event_stream_too(api, capsys, monkeypatch):
    monkeypatch.setenv("MEOWSTIK_API_TOKEN", TOKEN)
    done = snapshot("completed", {"A": {"status": "completed", "attempts": 1}})
    api.on("POST", f"{ORCH}/orchestrate", 202, snapshot("executing", {}))
    api.on("GET", f"{ORCH}/sessions/{SID}", 200, done)
    final = {"message": "Session finished", "progress": {"completedTasks": 1, "totalTasks": 1}}
    stream = f"id: 1-0\nevent: session.finished\ndata: {json.dumps(final)}\n\n"
    api.on("GET", f"{ORCH}/sessions/{SID}/events", 200, stream)
    assert cli(api, "submit", "goal", "--follow") == 0
    assert [(s.method, s.path) for s in api.sent] == [
        ("POST", f"{ORCH}/orchestrate"),
        ("GET", f"{ORCH}/sessions/{SID}/events"),
        ("GET", f"{ORCH}/sessions/{SID}"),
    ]
    assert {s.authorization for s in api.sent} == {f"Bearer {TOKEN}"}


def test_an_api_refusing_the_token_exits_3_and_the_token_is_never_printed(api, capsys):
    message = "missing or wrong bearer token"
    api.routes[("GET", f"{ORCH}/agents")] = api_error(401, "unauthorized", message)
    assert cli(api, "agents", "--api-token", TOKEN) == 3
    captured = capsys.readouterr()
    assert captured.err == f"meowstik agents: API error 401 unauthorized: {message}\n"
    assert TOKEN not in captured.out + captured.err


def test_a_token_that_cannot_be_a_header_value_exits_3_without_a_request(api, capsys):
    assert cli(api, "agents", "--api-token", "two words\n") == 3
    err = capsys.readouterr().err
    assert "the API token must not contain whitespace or control characters" in err
    assert "two words" not in err and api.sent == []


@pytest.mark.parametrize(
    "argv", [["cancel", SID], ["input", SID, "A", "1"], ["agents"], ["queues"], ["workers"]]
)
def test_an_unreachable_api_exits_3(capsys, argv):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    server.server_close()  # nothing listens there now
    assert main([*argv, "--api-url", url]) == 3
    assert f"cannot reach the API at {url}: connection refused" in capsys.readouterr().err


def test_an_invalid_setting_in_the_environment_is_a_message_not_a_traceback(
    monkeypatch, capsys
) -> None:
    monkeypatch.setenv("MEOWSTIK_API_PORT", "abc")
    assert main(["agents"]) == 3
    err = capsys.readouterr().err
    assert "invalid MEOWSTIK_* settings" in err and "MEOWSTIK_API_PORT" in err
    assert "Traceback" not in err
