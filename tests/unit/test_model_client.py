"""ModelClient on the official openai SDK, against a loopback server speaking OpenAI's wire
protocol (tests/support/openai_wire.py): requests, streamed assembly, usage, and error mapping."""

from __future__ import annotations

import socket
import threading

import pytest

from orchestrator.core.errors import (
    ContextLengthError,
    ModelUnavailableError,
    PermanentStepError,
    ReplyTruncatedError,
    RetryableStepError,
)
from tests.support.openai_wire import (
    OpenAIWire,
    WireCall,
    WireReply,
    context_length_exceeded,
    invalid_api_key,
    rate_limited,
    server_error,
)
from workers.executors.model_client import ModelClient
from workers.executors.model_reply import ToolCall, Usage

KEY = "sk-test-7f3a9c1d2e4b"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
ARGUMENTS = '{"city": "Paris", "unit": "celsius", "days": [1, 2, 3]}'


@pytest.fixture
def wire():
    with OpenAIWire() as server:
        yield server


def client_for(wire: OpenAIWire, sleeps: list[float] | None = None, **options) -> ModelClient:
    values = {"max_retries": 2, "api_key": KEY, **options}
    return ModelClient(
        wire.url,
        values.pop("api_key"),
        "gpt-test",
        5.0,
        values.pop("max_retries"),
        sleep=(sleeps if sleeps is not None else []).append,
        **values,
    )


def test_the_sdk_sends_model_messages_options_and_the_key_as_a_bearer_token(wire):
    client_for(wire).complete(
        MESSAGES,
        tools=[WEATHER_TOOL],
        tool_choice="auto",
        response_format={"type": "json_object"},
        temperature=0.7,
        max_tokens=300,
    )
    [request] = wire.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body == {
        "model": "gpt-test",
        "messages": MESSAGES,
        "tools": [WEATHER_TOOL],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "temperature": 0.7,
        "max_tokens": 300,
    }


def test_without_a_key_no_authorization_header_is_sent_and_no_environment_key_is_used(
    wire, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    client_for(wire, api_key=None).complete(MESSAGES)
    assert "authorization" not in wire.requests[0].headers


def test_a_plain_reply_gives_content_finish_reason_usage_and_the_served_model(wire):
    wire.answer(WireReply(content="Hello!", model="gpt-test-2025-01-01"))
    reply = client_for(wire).complete(MESSAGES)
    assert reply.content == "Hello!"
    assert reply.tool_calls == [] and reply.finish_reason == "stop"
    assert reply.usage == Usage(prompt_tokens=31, completion_tokens=12, total_tokens=43)
    assert reply.model == "gpt-test-2025-01-01"


def test_a_reply_with_both_content_and_tool_calls_keeps_both(wire):
    calls = [WireCall("call_a", "get_weather", ARGUMENTS), WireCall("call_b", "get_time", "{}")]
    wire.answer(WireReply(content="Let me check.", tool_calls=calls))
    for stream in (False, True):
        reply = client_for(wire).complete(MESSAGES, tools=[WEATHER_TOOL], stream=stream)
        assert reply.content == "Let me check."
        assert reply.tool_calls == [
            ToolCall("call_a", "get_weather", ARGUMENTS),
            ToolCall("call_b", "get_time", "{}"),
        ]
        assert reply.finish_reason == "tool_calls"


def test_streamed_tool_call_arguments_split_across_chunks_and_writes_are_joined_by_index(wire):
    calls = [WireCall("call_a", "get_weather", ARGUMENTS), WireCall("call_b", "get_weather", "{}")]
    wire.answer(WireReply(content=None, tool_calls=calls, argument_piece_chars=3, write_bytes=7))
    deltas: list[str] = []
    reply = client_for(wire).complete(MESSAGES, stream=True, on_delta=deltas.append)
    assert reply.content is None and deltas == []
    assert [(c.id, c.name, c.arguments_json) for c in reply.tool_calls] == [
        ("call_a", "get_weather", ARGUMENTS),
        ("call_b", "get_weather", "{}"),
    ]
    assert wire.requests[0].body["stream"] is True


def test_a_stream_asks_for_usage_and_takes_it_from_the_last_chunk(wire):
    wire.answer(WireReply(usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}))
    reply = client_for(wire).complete(MESSAGES, stream=True)
    assert wire.requests[0].body["stream_options"] == {"include_usage": True}
    assert reply.usage == Usage(5, 2, 7)


@pytest.mark.parametrize("stream", [False, True])
def test_a_server_that_counts_no_tokens_gives_unknown_usage_not_zero(wire, stream):
    wire.answer(WireReply(content="Hi", usage=None))
    reply = client_for(wire).complete(MESSAGES, stream=stream)
    assert reply.content == "Hi" and reply.usage is None


def test_content_deltas_reach_the_callback_in_order_while_the_stream_is_still_open(wire):
    first_seen = threading.Event()
    wire.answer(
        WireReply(content="One two three four", hold_after_first_piece=first_seen, write_bytes=5)
    )
    deltas: list[str] = []

    def on_delta(text: str) -> None:
        deltas.append(text)
        first_seen.set()  # the server sends the rest only once the first piece arrived here

    reply = client_for(wire).complete(MESSAGES, stream=True, on_delta=on_delta)
    assert deltas == ["One", " two", " three", " four"]
    assert reply.content == "One two three four"
    assert wire.held_in_vain == 0


@pytest.mark.parametrize("stream", [False, True])
def test_a_reply_cut_at_the_token_limit_is_a_permanent_error_saying_to_raise_max_tokens(
    wire, stream
):
    wire.answer(WireReply(content="The answer is", finish_reason="length"))
    with pytest.raises(ReplyTruncatedError, match="maxTokens") as raised:
        client_for(wire).complete(MESSAGES, max_tokens=3, stream=stream)
    assert isinstance(raised.value, PermanentStepError)
    assert raised.value.details["usage"]["completionTokens"] == 12


def test_a_429_is_retried_after_the_retry_after_seconds_then_succeeds(wire):
    wire.answer(rate_limited(retry_after_s=1), WireReply(content="ok"))
    sleeps: list[float] = []
    assert client_for(wire, sleeps).complete(MESSAGES).content == "ok"
    assert sleeps == [1.0] and len(wire.requests) == 2
    assert wire.requests[1].headers["x-stainless-retry-count"] == "0"  # the SDK did not retry


def test_a_lasting_429_is_retryable_and_carries_the_retry_after(wire):
    wire.answer(rate_limited(retry_after_s=2))
    sleeps: list[float] = []
    with pytest.raises(ModelUnavailableError, match="Rate limit reached") as raised:
        client_for(wire, sleeps, max_retries=1).complete(MESSAGES)
    error = raised.value
    assert isinstance(error, RetryableStepError)
    assert error.retry_after_s == 2.0 and error.details["retryAfterS"] == 2.0
    assert error.details["attempts"] == 2 and sleeps == [2.0]
    assert "127.0.0.1" in error.message and "gpt-test" in error.message


def test_a_retry_after_longer_than_a_worker_should_wait_is_not_slept_on_in_process(wire):
    wire.answer(rate_limited(retry_after_s=30))
    sleeps: list[float] = []
    with pytest.raises(ModelUnavailableError) as raised:
        client_for(wire, sleeps).complete(MESSAGES)
    assert raised.value.retry_after_s == 30.0
    assert sleeps == [] and len(wire.requests) == 1


def test_a_prompt_over_the_context_window_is_permanent_and_not_retried(wire):
    wire.answer(context_length_exceeded())
    with pytest.raises(ContextLengthError, match="too long for the model's context window") as r:
        client_for(wire).complete(MESSAGES)
    assert isinstance(r.value, PermanentStepError)
    assert r.value.details["code"] == "context_length_exceeded"
    assert len(wire.requests) == 1


def test_a_500_is_retried_with_backoff_then_retryable(wire):
    wire.answer(server_error())
    sleeps: list[float] = []
    with pytest.raises(ModelUnavailableError, match="failed 3 time") as raised:
        client_for(wire, sleeps, max_retries=2).complete(MESSAGES, stream=True)
    assert len(wire.requests) == 3 and sleeps == [0.2, 0.4]
    assert raised.value.retry_after_s is None


def test_a_stream_broken_after_text_was_delivered_is_not_repeated(wire):
    wire.answer(WireReply(content="Partial answer here", hang_up_after_first_piece=True))
    deltas: list[str] = []
    with pytest.raises(ModelUnavailableError):
        client_for(wire).complete(MESSAGES, stream=True, on_delta=deltas.append)
    assert deltas == ["Partial"] and len(wire.requests) == 1


def test_an_unreachable_endpoint_is_retryable_and_named_without_its_query():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ModelClient(f"http://127.0.0.1:{port}/v1?key={KEY}", KEY, "m", 2.0, 1, sleep=[].append)
    with pytest.raises(ModelUnavailableError, match="ConnectError") as raised:
        client.complete(MESSAGES)
    assert raised.value.details["attempts"] == 2
    assert KEY not in str(raised.value) and KEY not in repr(raised.value.details)


def test_a_rejected_key_is_permanent_and_the_key_never_appears_in_the_error(wire):
    wire.answer(invalid_api_key(shown=KEY))
    client = client_for(wire)
    with pytest.raises(PermanentStepError, match="HTTP 401") as raised:
        client.complete(MESSAGES)
    assert "MEOWSTIK_LLM_API_KEY" in raised.value.message
    assert KEY not in str(raised.value) and KEY not in repr(raised.value.details)
    assert KEY not in repr(client)
    for error in (rate_limited(), context_length_exceeded(), server_error()):
        wire.answer(error)
        with pytest.raises(Exception) as other:  # noqa: B017 - each kind is checked above
            client_for(wire, max_retries=0).complete(MESSAGES)
        assert KEY not in str(other.value) and KEY not in repr(other.value.details)


def test_an_unknown_route_is_permanent_and_says_where_the_base_url_should_end(wire):
    client = ModelClient(wire.url.removesuffix("/v1"), None, "m", 5.0, 2, sleep=[].append)
    with pytest.raises(PermanentStepError, match="HTTP 404.*ends in /v1"):
        client.complete(MESSAGES)


def test_the_client_reconnects_after_close(wire):
    client = client_for(wire)
    client.complete(MESSAGES)
    client.close()
    assert client.complete(MESSAGES).content == "Hello there, friend."
