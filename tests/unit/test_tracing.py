"""Tracing (orchestrator/tracing.py, workers/tracing.py, api/tracing.py) into the SDK's in-memory
exporter: the API's request span and the context stored with the session, a step run's span
under that stored context, the GenAI spans of model and tool calls, the W3C headers step
messages, model requests and HTTP agent requests carry; and, with tracing off, no span, no
header, no session field and no OpenTelemetry SDK import at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import fakeredis
import pytest

from orchestrator import tracing
from orchestrator.core.errors import ConfigurationError, PermanentStepError
from orchestrator.core.fleet import DEFAULT_AGENTS
from orchestrator.core.models import AgentDefinition, AgentExecutor, Capability, PlanStep
from orchestrator.core.steps import StepInput
from orchestrator.settings import Settings
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.keys import Keys
from orchestrator.store.sessions import SessionStore
from orchestrator.store.turns import TurnJournal
from tests.conftest import require
from tests.support.http_servers import JsonServer, echo_agent_endpoint
from tests.support.openai_wire import OpenAIWire, WireCall, WireError, WireReply
from tests.support.otlp import SpanRecord, records_of
from tests.support.recording import RecordingDispatcher
from tests.unit.test_tool_loop import PROMPT, model
from workers.tracing import step_span

try:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
except ImportError:  # the dev extra has it; outside CI these tests skip
    TracerProvider = None  # type: ignore[assignment,misc]

REPO_ROOT = Path(__file__).resolve().parents[2]
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
ORCHESTRATE = "/api/orchestrator/orchestrate"


def ids(span: SpanRecord) -> tuple[str, str]:
    return span.trace_id, span.span_id


def ids_in(traceparent: str) -> tuple[str, str]:
    """The trace and span id a W3C traceparent names (its flags vary: sampled, random)."""
    version, trace_id, span_id, _flags = traceparent.split("-")
    assert version == "00"
    return trace_id, span_id


class Spans:
    """The SDK's in-memory exporter, read as SpanRecords."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()

    def finished(self) -> list[SpanRecord]:
        return records_of(self.exporter.get_finished_spans())

    def clear(self) -> None:
        self.exporter.clear()


@pytest.fixture
def spans():
    """Trace into an in-memory exporter for the test (synchronously: a span is there when it
    ends)."""
    require(TracerProvider is not None, "opentelemetry-sdk (the dev extra)")
    collected = Spans()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(collected.exporter))
    tracing.use(provider)
    yield collected
    tracing.disable()


@contextmanager
def published_headers() -> Iterator[list[dict]]:
    """The headers of every Celery message published in the block."""
    from celery.signals import before_task_publish

    published: list[dict] = []

    def record(headers=None, **_):
        published.append(dict(headers or {}))

    before_task_publish.connect(record, weak=False)
    try:
        yield published
    finally:
        before_task_publish.disconnect(record)


def dispatch_one_step() -> None:
    from celery import Celery

    from orchestrator.core.dispatch import StepDispatch
    from workers.dispatcher import CeleryDispatcher

    app = Celery("t", broker="memory://", set_as_current=False)
    CeleryDispatcher(app).dispatch([StepDispatch.of("s-1", "B", "agent.a-1", "a-1")])


@pytest.fixture
def journal():
    return TurnJournal(fakeredis.FakeRedis(), Keys())


@pytest.fixture
def api(fake_redis):
    settings = Settings()
    registry = AgentRegistry(fake_redis, Keys(settings.key_prefix))
    for agent in DEFAULT_AGENTS:
        registry.register(agent, worker="w1", now_ms=0, alive_ms=10**13)
    from api import create_app

    app = create_app(settings, redis_client=fake_redis, dispatcher=RecordingDispatcher())
    return app.test_client(), SessionStore(fake_redis, Keys(settings.key_prefix))


def submit(client, **headers) -> str:
    response = client.post(ORCHESTRATE, json={"goal": "Research cats"}, headers=headers)
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["sessionId"]


def http_agent_step(endpoint: str) -> tuple[AgentDefinition, StepInput]:
    definition = AgentDefinition(
        id="remote-echo",
        name="Remote echo",
        type="tester",
        capabilities=[Capability(name="echo")],
        executor=AgentExecutor.HTTP,
        endpoint=endpoint,
        timeout_s=5.0,
    )
    step = StepInput(
        session_id="s-1",
        step_id="E",
        job_id="s-1_E",
        goal="g",
        step=PlanStep(id="E", title="E", required_capabilities=["echo"]),
        agent_id="remote-echo",
        attempt=1,
    )
    return definition, step


# --- the API: the session's root span, stored with the session ----------------------------------


def test_the_orchestrate_span_is_the_callers_child_and_its_context_is_stored_with_the_session(
    spans, api
):
    # Given an API that traces, and a caller in a trace of its own
    client, sessions = api
    # When the caller submits a goal with its traceparent
    sid = submit(client, traceparent=CALLER)
    # Then the request is a server span in the caller's trace, under the caller's span
    (request,) = [s for s in spans.finished() if s.kind == "server"]
    assert request.name == f"POST {ORCHESTRATE}"
    assert (request.trace_id, request.parent_id) == (CALLER_TRACE, CALLER_SPAN)
    assert request.attributes["http.response.status_code"] == 202
    assert request.attributes["meowstik.session.id"] == sid
    # And the session keeps that span's context: its step runs' parent
    stored = sessions.trace_context(sid)
    assert list(stored) == ["traceparent"] and ids_in(stored["traceparent"]) == ids(request)


def test_a_submit_without_a_traceparent_starts_a_trace_of_its_own(spans, api):
    client, sessions = api
    sid = submit(client)
    (request,) = [s for s in spans.finished() if s.kind == "server"]
    assert request.parent_id == "" and request.trace_id != CALLER_TRACE
    assert ids_in(sessions.trace_context(sid)["traceparent"]) == ids(request)


# --- the worker: a step run's span under the stored context -------------------------------------


def stored_session(fake_redis, context: dict[str, str]) -> SimpleNamespace:
    """A runtime whose store holds session s-1 submitted in ``context``."""
    keys = Keys()
    if context:
        fake_redis.hset(keys.session("s-1"), mapping=context)
    return SimpleNamespace(sessions=SessionStore(fake_redis, keys))


def delivery(headers: dict[str, str]) -> SimpleNamespace:
    """A Celery task request as the worker sees it: the message's headers and delivery."""
    return SimpleNamespace(
        id="s-1_B", headers=headers, retries=0, delivery_info={"routing_key": "agent.a-1"}
    )


def test_a_step_run_is_a_child_of_the_sessions_span_and_links_the_step_that_released_it(
    spans, fake_redis
):
    # Given session s-1 submitted in the caller's trace, and a message published by step A's run
    runtime = stored_session(fake_redis, {"traceparent": CALLER})
    released_by = f"00-{CALLER_TRACE}-{'a' * 16}-01"
    # When a worker runs the message
    with step_span(runtime, delivery({"traceparent": released_by}), "s-1", "B", "a-1"):
        pass
    # Then the run's span is the session span's child, linked to its sender
    (run,) = spans.finished()
    assert (run.name, run.kind) == ("step B", "consumer")
    assert (run.trace_id, run.parent_id, run.links) == (CALLER_TRACE, CALLER_SPAN, ("a" * 16,))
    assert run.attributes["meowstik.session.id"] == "s-1"
    assert run.attributes["meowstik.step.id"] == "B"
    assert run.attributes["messaging.destination.name"] == "agent.a-1"


def test_a_message_from_the_sessions_own_span_is_no_link_and_one_without_a_session_is_the_parent(
    spans, fake_redis
):
    runtime = stored_session(fake_redis, {"traceparent": CALLER})
    with step_span(runtime, delivery({"traceparent": CALLER}), "s-1", "A", "a-1"):
        pass
    other = f"00-{'c' * 32}-{'d' * 16}-01"
    with step_span(runtime, delivery({"traceparent": other}), "s-2", "A", "a-1"):
        pass  # s-2 was not traced at submit: the message's sender is all there is
    first, second = spans.finished()
    assert (first.parent_id, first.links) == (CALLER_SPAN, ())
    assert (second.trace_id, second.parent_id, second.links) == ("c" * 32, "d" * 16, ())


def test_a_step_run_that_fails_is_an_error_span(spans, fake_redis):
    runtime = stored_session(fake_redis, {"traceparent": CALLER})
    with step_span(runtime, delivery({}), "s-1", "A", "a-1"):
        tracing.record_failure(PermanentStepError("the agent broke"))
    (run,) = spans.finished()
    assert run.error and run.attributes["error.type"] == "PermanentStepError"


def test_step_messages_carry_their_senders_traceparent(spans):
    with published_headers() as published, tracing.span("sender") as sender:
        dispatch_one_step()
    assert published[0]["traceparent"] == sender.headers()["traceparent"]


# --- GenAI spans: model calls and tool calls inside a step run ----------------------------------


def test_model_calls_and_tool_calls_are_genai_spans_under_the_step_span(spans, journal):
    # Given a model that calls the add tool once, then answers
    script = (WireReply(content=None, tool_calls=[WireCall("c-1", "add", '{"a":2,"b":3}')]),)
    with OpenAIWire(*script, WireReply("5")) as wire:
        # When a step's agent chats with it
        with tracing.span("step work", kind="consumer"):
            model(wire, journal).chat(PROMPT, tools=["add"])
    first, tool, second, step = spans.finished()
    # Then both model calls and the tool call are children of the step's span
    assert {s.trace_id for s in (first, tool, second)} == {step.trace_id}
    assert {s.parent_id for s in (first, tool, second)} == {step.span_id}
    # And the model calls carry the GenAI attributes, with the tokens the server counted
    for call in (first, second):
        assert (call.name, call.kind) == ("chat m-1", "client")
        assert call.attributes["gen_ai.operation.name"] == "chat"
        assert call.attributes["gen_ai.system"] == "openai"
        assert call.attributes["gen_ai.request.model"] == "m-1"
        assert call.attributes["gen_ai.usage.input_tokens"] == 31
        assert call.attributes["gen_ai.usage.output_tokens"] == 12
        assert call.attributes["server.address"] == "127.0.0.1"
    assert first.attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    # And the tool call is an execute_tool span
    assert tool.name == "execute_tool add" and not tool.error
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "add"
    assert tool.attributes["meowstik.tool.call"] == "c1|t0"
    # And each request told the model's server which span it belongs to
    assert [ids_in(r.headers["traceparent"]) for r in wire.requests] == [ids(first), ids(second)]


def test_a_replayed_turn_makes_no_span(spans, journal):
    script = (WireReply(content=None, tool_calls=[WireCall("c-1", "add", '{"a":2,"b":3}')]),)
    with OpenAIWire(*script, WireReply("5")) as wire:
        model(wire, journal).chat(PROMPT, tools=["add"])
        spans.clear()
        model(wire, journal).chat(PROMPT, tools=["add"])  # the same step again: all replayed
    assert spans.finished() == [] and len(wire.requests) == 2


def test_a_refused_model_call_and_a_tool_error_are_error_spans(spans, journal):
    bad_arguments = WireReply(content=None, tool_calls=[WireCall("c-1", "add", '{"a": "x"}')])
    with OpenAIWire(bad_arguments, WireError(400, "no such parameter", "invalid_request")) as wire:
        with pytest.raises(PermanentStepError):
            model(wire, journal).chat(PROMPT, tools=["add"])
    _first, tool, refused = spans.finished()
    assert tool.error and tool.attributes["error.type"] == "invalid_arguments"
    assert refused.error and refused.attributes["error.type"] == "PermanentStepError"


def test_an_http_agent_request_carries_its_client_spans_traceparent(spans):
    from workers.executors.http_agent import HttpAgent

    with JsonServer(echo_agent_endpoint) as endpoint:
        definition, step = http_agent_step(f"{endpoint.url}/run?key=secret")
        with tracing.span("step E", kind="consumer"):
            HttpAgent(definition, Settings()).run(step)
    request, run = spans.finished()
    assert (request.name, request.kind, request.parent_id) == ("POST", "client", run.span_id)
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["url.full"] == f"{endpoint.url}/run"  # no query string
    assert ids_in(endpoint.request_headers[-1]["traceparent"]) == ids(request)


# --- off: the default ---------------------------------------------------------------------------


def test_with_tracing_off_no_header_and_no_session_field_is_written(api, journal):
    from workers.executors.http_agent import HttpAgent

    assert not tracing.enabled()
    # the API: a caller's traceparent is neither followed nor stored
    client, sessions = api
    sid = submit(client, traceparent=CALLER)
    assert sessions.trace_context(sid) == {}
    # a step message
    with published_headers() as published:
        dispatch_one_step()
    assert published and "traceparent" not in published[0]
    # a model request and an HTTP agent request
    with OpenAIWire(WireReply("hi")) as wire:
        model(wire, journal).chat(PROMPT)
    assert "traceparent" not in wire.requests[0].headers
    with JsonServer(echo_agent_endpoint) as endpoint:
        definition, step = http_agent_step(f"{endpoint.url}/run")
        HttpAgent(definition, Settings()).run(step)
    assert "traceparent" not in endpoint.request_headers[-1]


WITHOUT_OPENTELEMETRY = """
import importlib.abc, sys
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ImportError(f"No module named {name!r} (hidden by the test)")
sys.meta_path.insert(0, NotInstalled())
"""
SUBMIT_IN_A_FRESH_PROCESS = """
import json, sys
import fakeredis
from api import create_app
from orchestrator.core.fleet import DEFAULT_AGENTS
from orchestrator.settings import Settings
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.keys import Keys
from tests.support.recording import RecordingDispatcher

redis = fakeredis.FakeRedis()
for agent in DEFAULT_AGENTS:
    AgentRegistry(redis, Keys()).register(agent, worker="w1", now_ms=0, alive_ms=10**13)
app = create_app(Settings(), redis_client=redis, dispatcher=RecordingDispatcher())
reply = app.test_client().post("/api/orchestrator/orchestrate", json={"goal": "Research cats"})
assert reply.status_code == 202, reply.get_data(as_text=True)
from orchestrator import tracing
sdk = sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk.trace"))
print("RESULT " + json.dumps({"sdkModules": sdk, "tracing": tracing.enabled()}), flush=True)
"""


def submit_in_a_fresh_process(prelude: str = "", **env: str) -> tuple[dict, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MEOWSTIK_", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, "-c", prelude + SUBMIT_IN_A_FRESH_PROCESS],
        cwd=REPO_ROOT,
        env={**clean, "PYTHONPATH": str(REPO_ROOT), "OTEL_TRACES_EXPORTER": "console", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result_line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(result_line.removeprefix("RESULT ")), done.stdout + done.stderr


def test_with_tracing_off_nothing_is_exported_and_the_sdk_is_never_imported():
    require(TracerProvider is not None, "opentelemetry-sdk (the dev extra)")
    # Given an exporter configured the OTEL way (the console's: spans printed at exit)
    # When a process submits a session without MEOWSTIK_TRACING
    off, printed = submit_in_a_fresh_process()
    # Then nothing was exported, and the SDK's tracing was not even imported
    assert off["sdkModules"] == [] and ORCHESTRATE not in printed
    # While with MEOWSTIK_TRACING=true the same process exports the request's span
    on, printed = submit_in_a_fresh_process(MEOWSTIK_TRACING="true")
    assert on["tracing"] and on["sdkModules"] and f'"name": "POST {ORCHESTRATE}"' in printed


def test_without_opentelemetry_installed_tracing_on_is_a_warning_and_tracing_stays_off():
    result, printed = submit_in_a_fresh_process(WITHOUT_OPENTELEMETRY, MEOWSTIK_TRACING="true")
    assert result == {"sdkModules": [], "tracing": False}  # and the session was submitted
    assert "OpenTelemetry is not installed" in printed and "[tracing]" in printed


def test_an_exporter_that_is_not_installed_stops_the_start_naming_it(monkeypatch):
    require(TracerProvider is not None, "opentelemetry-sdk (the dev extra)")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin_nope")
    with pytest.raises(ConfigurationError, match="'zipkin_nope', which is not installed"):
        tracing.configure(Settings(tracing=True), tracing.API_SERVICE)
    assert not tracing.enabled()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.configure(Settings(tracing=True), tracing.API_SERVICE) is False
