"""ModelClient against llama-cpp-python's OpenAI-compatible server: a real implementation of the
wire protocol that nobody here wrote (tests/support/openai_wire.py is ours, byte for byte as we
read the spec; this is someone else's reading of it).

The served model is tiny and random (tiny_model.py) with a planted readout: unconstrained, it
answers ``REPLY``, one token per letter, then stops; with a forced tool call the server's JSON
grammar decides the arguments. What this server does, as these tests pin it:

* usage: in every non-streamed reply; never in a stream (``stream_options`` is ignored);
* streamed text: one chunk per token, a first chunk with the role only, a last one with the
  finish reason only, then ``[DONE]``;
* streamed tool calls: one fragment per token, and every fragment repeats the call's ``id``,
  ``type`` and ``function.name`` (OpenAI sends them in the first fragment only);
* a prompt over the context window: 400 ``context_length_exceeded`` when not streamed; when
  streamed, a 200 whose body ends without a single event;
* a request it cannot parse, or a forced tool missing from ``tools``: 500, not 4xx;
* a wrong API key: 401 with ``{"detail": "Invalid API key"}`` (FastAPI's shape, no ``error``);
* an unknown model name: not checked; the loaded model answers and the reply echoes the name.
"""

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest

from orchestrator.core.errors import (
    ContextLengthError,
    ModelUnavailableError,
    PermanentStepError,
    ReplyTruncatedError,
)
from tests.llm_server.tiny_model import REPLY
from workers.executors.model_client import ModelClient

pytestmark = pytest.mark.timeout(90)

MESSAGES = [
    {"role": "system", "content": "You are a cat."},
    {"role": "user", "content": "What do you say?"},
]
WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "tomorrow": {"type": "boolean"},
    },
    "required": ["unit", "tomorrow"],
    "additionalProperties": False,
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather forecast in a city.",
        "parameters": WEATHER_PARAMETERS,
    },
}
FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}


def client_for(server, sleeps: list[float] | None = None, **options) -> ModelClient:
    values = {"api_key": server.api_key, "model": server.model, "max_retries": 0, **options}
    return ModelClient(
        server.base_url,
        values.pop("api_key"),
        values.pop("model"),
        30.0,
        values.pop("max_retries"),
        endpoint_name="llama-cpp-python",
        sleep=(sleeps if sleeps is not None else []).append,
    )


def assert_weather_call(call) -> dict:
    assert call.name == "get_weather"
    assert call.id
    arguments = json.loads(call.arguments_json)
    jsonschema.validate(arguments, WEATHER_PARAMETERS)
    return arguments


def test_a_completion_returns_the_models_text_and_its_token_counts(real_llm_server):
    with client_for(real_llm_server) as client:
        reply = client.complete(MESSAGES)
        longer = client.complete([*MESSAGES, {"role": "user", "content": "Tell me more. " * 10}])

    assert reply.content == REPLY
    assert reply.finish_reason == "stop"
    assert reply.tool_calls == []
    assert reply.model == real_llm_server.model
    assert reply.usage is not None
    assert reply.usage.completion_tokens == len(REPLY)  # one token a letter; the end not counted
    assert reply.usage.prompt_tokens > len("What do you say?")
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert longer.content == REPLY
    assert longer.usage.prompt_tokens > reply.usage.prompt_tokens + len("Tell me more. " * 9)


def test_a_streamed_reply_comes_token_by_token_and_without_usage(real_llm_server):
    deltas: list[str] = []
    with client_for(real_llm_server) as client:
        reply = client.complete(MESSAGES, stream=True, on_delta=deltas.append)

    assert deltas == list(REPLY)  # a chunk per token, each handed on as it came
    assert "".join(deltas) == reply.content == REPLY
    assert reply.finish_reason == "stop"
    assert reply.tool_calls == []
    assert reply.model == real_llm_server.model
    # the client asks for stream_options.include_usage; this server ignores it and sends none
    assert reply.usage is None


def test_a_forced_tool_call_has_the_tools_name_and_arguments_in_its_schema(real_llm_server):
    with client_for(real_llm_server) as client:
        reply = client.complete(MESSAGES, tools=[WEATHER_TOOL], tool_choice=FORCE_WEATHER)

    assert reply.finish_reason == "tool_calls"
    assert reply.content is None
    [call] = reply.tool_calls
    assert set(assert_weather_call(call)) == {"unit", "tomorrow"}
    assert reply.usage is not None and reply.usage.completion_tokens > 0


def test_a_streamed_tool_call_is_reassembled_from_its_fragments(real_llm_server):
    """Greedy decoding (temperature 0) makes the grammar's choice the same each time, so the
    reassembled call can be compared with the server's raw fragments and its non-streamed reply."""
    request = {
        "model": real_llm_server.model,
        "messages": MESSAGES,
        "tools": [WEATHER_TOOL],
        "tool_choice": FORCE_WEATHER,
        "temperature": 0,
        "stream": True,
    }
    fragments = []
    with httpx.stream(
        "POST",
        f"{real_llm_server.base_url}/chat/completions",
        json=request,
        headers={"Authorization": f"Bearer {real_llm_server.api_key}"},
        timeout=30.0,
    ) as answer:
        assert answer.status_code == 200
        for line in answer.iter_lines():
            if line.startswith("data: {"):
                for choice in json.loads(line[len("data: ") :])["choices"]:
                    fragments += (choice["delta"] or {}).get("tool_calls") or []
    deltas: list[str] = []
    with client_for(real_llm_server) as client:
        streamed = client.complete(
            MESSAGES,
            tools=[WEATHER_TOOL],
            tool_choice=FORCE_WEATHER,
            temperature=0,
            stream=True,
            on_delta=deltas.append,
        )
        whole = client.complete(
            MESSAGES, tools=[WEATHER_TOOL], tool_choice=FORCE_WEATHER, temperature=0
        )

    # the server's split: a fragment per token, each repeating the call's id and name
    assert len(fragments) > 10
    assert {(piece["index"], piece["id"], piece["function"]["name"]) for piece in fragments} == {
        (0, fragments[0]["id"], "get_weather")
    }
    [call] = streamed.tool_calls
    assert call.id.startswith("call_") and call.id != fragments[0]["id"]  # an id per request
    assert call.arguments_json == "".join(piece["function"]["arguments"] for piece in fragments)
    assert_weather_call(call)
    assert call.arguments_json == whole.tool_calls[0].arguments_json
    assert streamed.finish_reason == "tool_calls"
    assert streamed.content is None and deltas == []
    assert streamed.usage is None


def test_a_reply_cut_at_max_tokens_is_a_truncated_reply(real_llm_server):
    with client_for(real_llm_server) as client, pytest.raises(ReplyTruncatedError) as caught:
        client.complete(MESSAGES, max_tokens=2)

    assert caught.value.details["finishReason"] == "length"
    assert caught.value.details["usage"]["completionTokens"] == 2


def test_a_prompt_over_the_context_window_is_a_context_length_error(real_llm_server):
    sleeps: list[float] = []
    too_long = [{"role": "user", "content": "meow " * real_llm_server.context_window}]
    with client_for(real_llm_server, sleeps, max_retries=2) as client:
        with pytest.raises(ContextLengthError) as caught:
            client.complete(too_long)

    assert caught.value.details["status"] == 400
    assert caught.value.details["code"] == "context_length_exceeded"
    assert f"maximum context length is {real_llm_server.context_window}" in str(caught.value)
    assert sleeps == []  # permanent: not retried


def test_a_streamed_prompt_over_the_context_window_is_an_empty_stream(real_llm_server):
    """Streaming, the server has answered 200 before it tokenizes the prompt; its error then
    ends the body cleanly without a single event (no error event, no [DONE]), which the client
    can only report as a malformed answer, a permanent error."""
    sleeps: list[float] = []
    too_long = [{"role": "user", "content": "meow " * real_llm_server.context_window}]
    with client_for(real_llm_server, sleeps, max_retries=2) as client:
        with pytest.raises(PermanentStepError) as caught:
            client.complete(too_long, stream=True)

    assert not isinstance(caught.value, ContextLengthError)
    assert "an empty stream" in str(caught.value)
    assert sleeps == []


def test_a_wrong_api_key_is_a_permanent_error_without_retries(real_llm_server):
    sleeps: list[float] = []
    with client_for(real_llm_server, sleeps, api_key="sk-not-the-key", max_retries=2) as client:
        with pytest.raises(PermanentStepError) as caught:
            client.complete(MESSAGES)

    assert not isinstance(caught.value, ContextLengthError)
    assert caught.value.details["status"] == 401
    assert "Invalid API key" in str(caught.value)
    assert "sk-not-the-key" not in str(caught.value)
    assert sleeps == []


@pytest.mark.parametrize(
    ("messages", "tool_choice", "said"),
    [
        ([{"role": "wizard", "content": "Hi"}], None, "validation error"),
        (MESSAGES, {"type": "function", "function": {"name": "cast_spell"}}, "not found in tools"),
    ],
    ids=["unknown-role", "forced-tool-not-offered"],
)
def test_a_request_the_server_cannot_serve_is_answered_500_and_so_retried(
    real_llm_server, messages, tool_choice, said
):
    """llama-cpp-python reports these client mistakes as internal errors (HTTP 500), which the
    client cannot tell from a server fault: it retries, then reports the model unavailable."""
    sleeps: list[float] = []
    with client_for(real_llm_server, sleeps, max_retries=2) as client:
        with pytest.raises(ModelUnavailableError) as caught:
            client.complete(messages, tools=[WEATHER_TOOL], tool_choice=tool_choice)

    assert caught.value.details["attempts"] == 3
    assert len(sleeps) == 2
    assert all(error.startswith("HTTP 500") for error in caught.value.details["errors"])
    assert said in str(caught.value)


def test_an_unknown_model_name_is_not_checked_and_is_echoed(real_llm_server):
    with client_for(real_llm_server, model="gpt-no-such-model") as client:
        reply = client.complete(MESSAGES)

    assert reply.content == REPLY  # the one loaded model answered
    assert reply.model == "gpt-no-such-model"


def test_a_durable_chat_streams_records_and_replays_against_the_real_server(real_llm_server):
    """``step_input.llm`` as a worker binds it: the streamed reply reaches the sink, is recorded,
    and a rerun of the step reads it back without a request (the server's log would show one
    more completion otherwise; the count of log lines is not an API, the recorded document is)."""
    import fakeredis

    from orchestrator.core.models import PlanStep
    from orchestrator.core.steps import StepInput
    from orchestrator.core.tools import ToolRegistry
    from orchestrator.store.keys import Keys
    from orchestrator.store.turns import TurnJournal
    from workers.executors.tool_loop import DurableModel

    step = StepInput(
        session_id="s-1",
        step_id="a",
        job_id="s-1.a",
        goal="g",
        step=PlanStep(id="a", title="a", required_capabilities=["x"]),
        agent_id="cat-001",
        attempt=1,
    )
    journal = TurnJournal(fakeredis.FakeRedis(), Keys())
    pieces: list[str] = []

    class Sink:
        def on_delta(self, text: str) -> None:
            pieces.append(text)

        def flush(self) -> None:
            pass

        def close(self) -> None:
            pass

    def durable(client: ModelClient) -> DurableModel:
        return DurableModel(
            client,
            ToolRegistry(),
            journal.bound("s-1", "a", "cat-001"),
            step,
            allowed_tools=(),
            max_turns=2,
            stream=True,
            deltas=Sink,
        )

    with client_for(real_llm_server) as client:
        first = durable(client).chat(MESSAGES)
    assert first.content == REPLY == "".join(pieces)
    assert (first.calls, first.replayed, first.usage) == (1, 0, None)  # no usage in streams
    recorded = journal.bound("s-1", "a", "cat-001").get("c1")
    assert recorded["reply"]["content"] == REPLY and recorded["reply"]["usage"] is None

    unreachable = ModelClient("http://127.0.0.1:9/v1", None, real_llm_server.model, 1.0, 0)
    again = durable(unreachable).chat(MESSAGES)  # any request would fail: none is made
    assert (again.content, again.replayed) == (REPLY, 1)
    assert again.messages == first.messages
