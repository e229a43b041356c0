"""Endpoint allowlisting, HTTP agents and LLM agents, against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from orchestrator.core.endpoints import check_endpoint
from orchestrator.core.errors import EndpointNotAllowedError, PermanentStepError, RetryableStepError
from orchestrator.core.models import AgentDefinition, AgentExecutor, Capability, PlanStep
from orchestrator.core.steps import StepInput, StepResult
from orchestrator.settings import Settings
from tests.support.llm import bind_model
from workers.executors.http_agent import HttpAgent
from workers.executors.llm import ChatClient, LlmAgent, llm_available
from workers.executors.transport import MAX_RESPONSE_BYTES, USER_AGENT

HOSTS = "127.0.0.1,localhost,::1"
BLOCK_LIMIT_S = 30.0  # a blocked handler gives up on its own if teardown never releases it


@dataclass
class Scripted:
    """One response the server will give."""

    status: int = 200
    body: Any = b""  # bytes as is; anything else is sent as JSON
    headers: dict[str, str] = field(default_factory=dict)
    block: bool = False  # wait for the server's release event before answering


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ScriptedServer:
    """A ThreadingHTTPServer answering POSTs from a script; the last response repeats."""

    def __init__(self) -> None:
        self.script: deque[Scripted] = deque([Scripted(body={"output": "default"})])
        self.requests: list[Received] = []
        self.release = threading.Event()
        self._received = threading.Condition()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def answer(self, *responses: Scripted) -> None:
        self.script = deque(responses)

    def wait_for_requests(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        with self._received:
            assert self._received.wait_for(lambda: len(self.requests) >= count, timeout_s)
        return self.requests

    def close(self) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next(self, received: Received) -> Scripted:
        with self._received:
            self.requests.append(received)
            self._received.notify_all()
            return self.script.popleft() if len(self.script) > 1 else self.script[0]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                reply = server._next(Received(self.path, dict(self.headers), body))
                if reply.block:
                    server.release.wait(BLOCK_LIMIT_S)
                data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body)
                data = data.encode() if isinstance(data, str) else data
                headers = {"Content-Type": "application/json", **reply.headers}
                try:
                    self.send_response(reply.status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    return  # the client gave up (timeout, body limit): nothing to answer

            def log_message(self, *args: object) -> None:
                return

        return Handler


@pytest.fixture
def server():
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


def settings(**overrides: Any) -> Settings:
    values = {"http_agent_allowed_hosts": HOSTS, "http_agent_max_retries": 2, "llm_api_key": None}
    return Settings(**{**values, **overrides})


def http_definition(endpoint: str, timeout_s: float = 5.0) -> AgentDefinition:
    return AgentDefinition(
        id="remote-summariser",
        name="Remote summariser",
        type="summariser",
        capabilities=[Capability(name="summarise")],
        executor=AgentExecutor.HTTP,
        endpoint=endpoint,
        timeout_s=timeout_s,
    )


def llm_definition(system_prompt: str | None = None) -> AgentDefinition:
    return AgentDefinition(
        id="llm-reviewer",
        name="Reviewer",
        type="reviewer",
        description="Reviews drafts.",
        capabilities=[Capability(name="review", description="finds flaws in a draft")],
        executor=AgentExecutor.LLM,
        system_prompt=system_prompt,
    )


STEP_INPUT = StepInput(
    session_id="session-42",
    step_id="review",
    job_id="job-7",
    goal="Ship a safe login page",
    step=PlanStep(id="review", title="Review the draft", required_capabilities=["review"]),
    agent_id="remote-summariser",
    attempt=1,
    initial_context={"lang": "en"},
    shared_state={"tone": "formal"},
    dependencies={"draft": {"text": "Login with a password."}},
)


def http_agent(server: ScriptedServer, sleeps: list[float], **overrides: Any) -> HttpAgent:
    timeout_s = overrides.pop("timeout_s", 5.0)
    definition = http_definition(server.url("/agent"), timeout_s)
    return HttpAgent(definition, settings(**overrides), sleep=sleeps.append)


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("http://LOCALHOST:8080/run?x=1#frag", "http://localhost:8080/run?x=1"),
        ("HTTPS://127.0.0.1/agent", "https://127.0.0.1/agent"),
        ("http://[::1]:9000/agent", "http://[::1]:9000/agent"),
        ("http://[0:0:0:0:0:0:0:1]/agent", "http://[::1]/agent"),
    ],
)
def test_an_allowed_endpoint_is_returned_normalised(url: str, normalised: str) -> None:
    assert check_endpoint(url, settings()) == normalised


@pytest.mark.parametrize(
    ("url", "reason", "setting"),
    [
        ("http://[::1/agent", "cannot be parsed", None),
        ("http://localhost:99999/", "cannot be parsed", None),
        ("http://local host/", "whitespace", None),
        ("ftp://localhost/agent", "scheme 'ftp'", "MEOWSTIK_HTTP_AGENT_ALLOWED_SCHEMES"),
        ("localhost:8080/agent", "scheme 'localhost'", "MEOWSTIK_HTTP_AGENT_ALLOWED_SCHEMES"),
        ("http:///agent", "no host", None),
        ("http://example.com/agent", "host 'example.com'", "MEOWSTIK_HTTP_AGENT_ALLOWED_HOSTS"),
        ("http://[::2]/agent", "host '::2'", "MEOWSTIK_HTTP_AGENT_ALLOWED_HOSTS"),
        ("http://bob:hunter2@localhost/", "credentials", None),
        ("http://localhost/" + "a" * 2048, "over 2048", None),
    ],
)
def test_a_bad_endpoint_is_rejected_saying_why_and_what_to_change(
    url: str, reason: str, setting: str | None
) -> None:
    with pytest.raises(EndpointNotAllowedError) as raised:
        check_endpoint(url, settings())
    error = raised.value
    assert (error.code, error.http_status) == ("endpoint_not_allowed", 422)
    assert reason in error.details["reason"]
    assert set(error.details) == {"endpoint", "reason", "allowedSchemes", "allowedHosts"}
    assert setting is None or setting in error.message
    assert "hunter2" not in error.message


def test_hosts_are_compared_case_insensitively_and_a_star_allows_any_host() -> None:
    assert check_endpoint(
        "http://Agents.Internal/x", settings(http_agent_allowed_hosts="AGENTS.internal")
    )
    assert check_endpoint("https://example.com/x", settings(http_agent_allowed_hosts="*"))


def test_an_http_agent_posts_the_step_context_and_returns_output_and_state_updates(server):
    server.answer(Scripted(body={"output": {"verdict": "ok"}, "stateUpdates": {"reviewed": True}}))
    result = http_agent(server, []).run(STEP_INPUT)
    assert result == StepResult(output={"verdict": "ok"}, state_updates={"reviewed": True})
    [request] = server.requests
    assert request.path == "/agent"
    assert request.json() == STEP_INPUT.as_context()
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == USER_AGENT


def test_an_http_agent_takes_a_json_body_without_output_as_the_output_itself(server):
    server.answer(Scripted(body={"summary": "short"}))
    assert http_agent(server, []).run(STEP_INPUT) == StepResult(output={"summary": "short"})


def test_state_updates_that_are_not_an_object_fail_the_step_permanently(server):
    server.answer(Scripted(body={"output": 1, "stateUpdates": ["not", "a", "dict"]}))
    with pytest.raises(PermanentStepError, match="stateUpdates of type list"):
        http_agent(server, []).run(STEP_INPUT)


def test_a_503_is_retried_after_a_short_backoff_and_the_next_answer_is_used(server):
    server.answer(Scripted(status=503, body=b"busy"), Scripted(body={"output": "late"}))
    sleeps: list[float] = []
    assert http_agent(server, sleeps).run(STEP_INPUT).output == "late"
    assert len(server.requests) == 2
    assert sleeps == [0.2]


def test_a_429_waits_as_long_as_retry_after_says_capped_at_five_seconds(server):
    server.answer(
        Scripted(status=429, headers={"Retry-After": "0"}),
        Scripted(status=429, headers={"Retry-After": "120"}),
        Scripted(body={"output": "served"}),
    )
    sleeps: list[float] = []
    assert http_agent(server, sleeps).run(STEP_INPUT).output == "served"
    assert len(server.requests) == 3
    assert sleeps == [0.0, 5.0]


def test_a_persistent_500_raises_a_retryable_error_after_every_retry_is_spent(server):
    server.answer(Scripted(status=500, body=b"database down"))
    sleeps: list[float] = []
    with pytest.raises(RetryableStepError, match="failed 3 time") as raised:
        http_agent(server, sleeps, http_agent_max_retries=2).run(STEP_INPUT)
    assert len(server.requests) == 3
    assert sleeps == [0.2, 0.4]
    assert "database down" in raised.value.message


def test_a_400_fails_permanently_at_once_quoting_the_body(server):
    server.answer(Scripted(status=400, body=b"x" * 600 + b"TAIL"))
    with pytest.raises(PermanentStepError, match="HTTP 400") as raised:
        http_agent(server, []).run(STEP_INPUT)
    assert len(server.requests) == 1
    assert raised.value.details["body"] == "x" * 500


def test_a_2xx_that_is_not_json_fails_permanently_naming_endpoint_and_content_type(server):
    server.answer(Scripted(body=b"<html>hi</html>", headers={"Content-Type": "text/html"}))
    with pytest.raises(PermanentStepError, match="text/html") as raised:
        http_agent(server, []).run(STEP_INPUT)
    assert server.url("/agent") in raised.value.message


def test_a_redirect_is_not_followed_and_fails_permanently(server):
    server.answer(Scripted(status=302, headers={"Location": server.url("/elsewhere")}))
    with pytest.raises(PermanentStepError, match="redirects are not followed"):
        http_agent(server, []).run(STEP_INPUT)
    assert [request.path for request in server.requests] == ["/agent"]


def test_an_endpoint_that_does_not_answer_in_time_raises_a_retryable_error(server):
    server.answer(Scripted(block=True))
    sleeps: list[float] = []
    with pytest.raises(RetryableStepError, match="Timeout"):
        http_agent(server, sleeps, timeout_s=0.3, http_agent_max_retries=1).run(STEP_INPUT)
    assert len(server.wait_for_requests(2)) == 2
    assert sleeps == [0.2]


def test_a_body_over_ten_mebibytes_fails_the_step_permanently(server):
    server.answer(Scripted(body=b"[" + b" " * MAX_RESPONSE_BYTES + b"]"))
    with pytest.raises(PermanentStepError, match=f"over {MAX_RESPONSE_BYTES} bytes"):
        http_agent(server, []).run(STEP_INPUT)


def test_a_host_outside_the_allowlist_is_refused_before_any_request(server):
    agent = http_agent(server, [], http_agent_allowed_hosts="localhost")
    with pytest.raises(EndpointNotAllowedError, match="127.0.0.1"):
        agent.run(STEP_INPUT)
    with pytest.raises(EndpointNotAllowedError, match="example.com"):
        HttpAgent(http_definition("http://example.com/agent"), settings()).run(STEP_INPUT)
    assert server.requests == []


def chat_reply(content: Any) -> Scripted:
    return Scripted(
        body={"id": "chat-1", "choices": [{"message": {"role": "assistant", "content": content}}]}
    )


class BoundLlmAgent:
    """An LLM agent with the model a worker would bind to its step (not streamed: the scripted
    server answers JSON only)."""

    def __init__(self, definition, values: dict[str, Any], sleeps: list[float] | None = None):
        self.settings = settings(llm_stream=False, **values)
        self.agent = LlmAgent(definition, self.settings)
        self.sleeps = sleeps

    def run(self, step_input):
        bound = bind_model(self.agent.definition, self.settings, step_input, sleep=self.sleeps)
        return self.agent.run(bound)


def llm_agent(server: ScriptedServer, sleeps: list[float], **overrides: Any) -> BoundLlmAgent:
    values = {"llm_base_url": server.url("/v1"), "llm_model": "test-model", **overrides}
    return BoundLlmAgent(llm_definition(), values, sleeps.append)


def test_an_llm_agent_sends_model_prompt_and_step_context_with_the_api_key(server):
    answer = {"output": {"issues": []}, "stateUpdates": {"reviewed": True}}
    server.answer(chat_reply(json.dumps(answer)))
    result = llm_agent(server, [], llm_api_key="sk-test").run(STEP_INPUT)
    assert result == StepResult(output={"issues": []}, state_updates={"reviewed": True})
    [request] = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer sk-test"
    body = request.json()
    assert (body["model"], body["temperature"]) == ("test-model", 0.2)
    system, user = body["messages"]
    assert (system["role"], user["role"]) == ("system", "user")
    assert all(text in system["content"] for text in ("Reviewer", "reviewer", "Reviews drafts."))
    assert "finds flaws in a draft" in system["content"]
    context = json.loads(user["content"])
    assert context["sessionId"] == "session-42"
    assert context["dependencies"] == {"draft": {"text": "Login with a password."}}


def test_a_fenced_json_reply_is_unwrapped_and_no_key_means_no_authorization(server):
    server.answer(chat_reply('```json\n{"output": "fine"}\n```'))
    assert llm_agent(server, []).run(STEP_INPUT) == StepResult(output="fine")
    assert "Authorization" not in server.requests[0].headers


def test_a_plain_text_reply_is_kept_verbatim_with_the_model_name(server):
    server.answer(chat_reply("Looks good to me."))
    output = llm_agent(server, []).run(STEP_INPUT).output
    assert output == {"text": "Looks good to me.", "mode": "llm", "model": "test-model"}


def test_an_agent_system_prompt_replaces_the_default(server):
    server.answer(chat_reply("ok"))
    agent = BoundLlmAgent(llm_definition("Be terse."), {"llm_base_url": server.url("/v1")})
    agent.run(STEP_INPUT)
    assert server.requests[0].json()["messages"][0] == {"role": "system", "content": "Be terse."}


def test_a_reply_without_choices_fails_permanently(server):
    server.answer(Scripted(body={"object": "error"}))
    with pytest.raises(PermanentStepError, match=r"choices\[0\]\.message\.content"):
        llm_agent(server, []).run(STEP_INPUT)


def test_a_rate_limited_chat_api_raises_a_retryable_error_after_the_retries(server):
    server.answer(Scripted(status=429, body={"error": {"message": "slow down"}}))
    client = ChatClient(server.url("/v1/"), "test-model", None, 5.0, max_retries=1, sleep=[].append)
    with pytest.raises(RetryableStepError, match="slow down"):
        client.complete([{"role": "user", "content": "hi"}])
    assert len(server.requests) == 2


def test_an_llm_agent_cannot_be_built_without_a_configured_llm() -> None:
    assert not llm_available(settings(llm_base_url=None))
    with pytest.raises(PermanentStepError, match="no LLM configured: set MEOWSTIK_LLM_BASE_URL"):
        LlmAgent(llm_definition(), settings(llm_base_url=None))


class RecordingState:
    """A stand-in for ``step_input.state`` that records writes (the real one is tested in
    tests/unit/test_state_manager.py and over workers in tests/integration/test_agent_state.py)."""

    def __init__(self, private: dict | None = None) -> None:
        self.writes: list[tuple] = []
        outer = self

        class Private:
            def entries(self) -> dict:
                return dict(private or {})

            def set(self, key, value) -> int:
                outer.writes.append(("private", key, value, None))
                return 1

        self.private = Private()

    def set(self, key, value, type="shared", ttl_s=None) -> int:
        self.writes.append((type, key, value, ttl_s))
        return 1


def test_an_http_agent_gets_its_private_state_and_writes_typed_state_updates_at_once(server):
    state = RecordingState(private={"cursor": 7})
    step_input = dataclasses.replace(STEP_INPUT, state=state)
    typed = {
        "cache": {"value": [1, 2], "type": "temporary", "ttlS": 30},
        "seen": {"value": True, "type": "private"},
        "plain": {"value": 1, "note": "a shared object value, as it stands"},
        "n": 3,
    }
    server.answer(Scripted(body={"output": "ok", "stateUpdates": typed}))

    result = http_agent(server, []).run(step_input)

    [request] = server.requests
    assert request.json()["privateState"] == {"cursor": 7}
    assert state.writes == [
        ("temporary", "cache", [1, 2], 30),
        ("private", "seen", True, None),
    ]
    assert result.state_updates == {"plain": typed["plain"], "n": 3}
