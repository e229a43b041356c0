"""The durable tool loop (workers/executors/tool_loop.py) against the OpenAI wire fake: the
tools protocol (parallel calls, errors as results, the turn limit), and durability: a step that
runs again replays what its record holds, pays no model call twice, runs no non-idempotent tool
twice, and asks the operator about a call whose outcome is unknown."""

from __future__ import annotations

import json
from typing import Any

import fakeredis
import pytest

from orchestrator.core.builtin_tools import ask_operator
from orchestrator.core.errors import PermanentStepError, RetryableStepError
from orchestrator.core.models import PlanStep
from orchestrator.core.steps import InputRequired, StepInput
from orchestrator.core.tools import ToolContext, ToolRegistry, tool
from orchestrator.store.keys import Keys
from orchestrator.store.turns import TurnJournal
from tests.support.openai_wire import OpenAIWire, WireCall, WireError, WireReply
from workers.executors.model_client import ModelClient
from workers.executors.tool_loop import DurableModel

SENT: list[dict[str, Any]] = []  # what the send_email tool "sent", in order


@tool(idempotent=True)
def add(context: ToolContext, a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def send_email(context: ToolContext, to: str) -> dict[str, Any]:
    """Send an email (a side effect: not idempotent)."""
    SENT.append({"to": to})
    return {"sent": True, "to": to}


REGISTRY = ToolRegistry([add, send_email, ask_operator])
STEP = StepInput(
    session_id="s-1",
    step_id="work",
    job_id="s-1_work",
    goal="g",
    step=PlanStep(id="work", title="Work", required_capabilities=["x"]),
    agent_id="agent-1",
    attempt=1,
)
PROMPT = [{"role": "user", "content": "What is 2 + 3?"}]


class Logger:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, dict]] = []

    def __getattr__(self, level: str):
        return lambda message, **data: self.entries.append((level, message, data))


@pytest.fixture(autouse=True)
def _clear_sent():
    SENT.clear()


@pytest.fixture
def journal():
    return TurnJournal(fakeredis.FakeRedis(), Keys())


def model(
    wire: OpenAIWire, journal: TurnJournal, step: StepInput = STEP, **options
) -> DurableModel:
    options = {"allowed_tools": REGISTRY.names(), "max_turns": 5, **options}
    client = ModelClient(wire.url, None, "m-1", 5.0, 0, sleep=lambda _s: None)
    return DurableModel(
        client,
        REGISTRY,
        journal.bound(step.session_id, step.step_id, step.agent_id),
        step,
        **options,
    )


def call(name: str, arguments: dict | str, id: str = "call_1") -> WireCall:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return WireCall(id, name, text)


def tool_messages(request) -> list[dict]:
    return [m for m in request.body["messages"] if m["role"] == "tool"]


def test_a_tool_call_runs_and_its_result_goes_back_to_the_model(journal):
    script = (WireReply(content=None, tool_calls=[call("add", {"a": 2, "b": 3})]), WireReply("5"))
    with OpenAIWire(*script) as wire:
        outcome = model(wire, journal).chat(PROMPT, tools=["add"])
    assert (outcome.content, outcome.calls, outcome.replayed) == ("5", 2, 0)
    first, second = wire.requests
    assert [t["function"]["name"] for t in first.body["tools"]] == ["add"]
    assert tool_messages(second) == [{"role": "tool", "tool_call_id": "call_1", "content": "5"}]
    assert second.body["messages"][1]["tool_calls"][0]["function"]["name"] == "add"
    assert outcome.usage.total_tokens == 86  # two calls of 43


def test_parallel_calls_run_in_order_and_errors_are_results_not_failures(journal):
    calls = [
        call("add", {"a": 1, "b": 1}, "c-a"),
        call("add", '{"a": "one"', "c-b"),  # not JSON
        call("nope", {}, "c-c"),
    ]
    with OpenAIWire(WireReply(content=None, tool_calls=calls), WireReply("done")) as wire:
        outcome = model(wire, journal).chat(PROMPT, tools=["add"])
    assert outcome.content == "done"
    results = tool_messages(wire.requests[1])
    assert [r["tool_call_id"] for r in results] == ["c-a", "c-b", "c-c"]
    assert results[0]["content"] == "2"
    assert json.loads(results[1]["content"])["error"]["type"] == "invalid_arguments"
    assert json.loads(results[2]["content"])["error"]["type"] == "unknown_tool"


def test_a_model_that_never_stops_calling_tools_fails_after_the_turn_limit(journal):
    with OpenAIWire(WireReply(content=None, tool_calls=[call("add", {"a": 1, "b": 2})])) as wire:
        with pytest.raises(PermanentStepError, match="after 3 calls"):
            model(wire, journal, max_turns=3).chat(PROMPT, tools=["add"])
    assert len(wire.requests) == 3


def test_tools_the_agent_may_not_use_or_this_worker_lacks_are_refused_before_any_call(journal):
    with OpenAIWire(WireReply("x")) as wire:
        with pytest.raises(PermanentStepError, match="may not use tool 'send_email'"):
            model(wire, journal, allowed_tools=["add"]).chat(PROMPT, tools=["send_email"])
        with pytest.raises(PermanentStepError, match="'ghost' is not registered"):
            model(wire, journal).chat(PROMPT, tools=["ghost"])
    assert wire.requests == []


def test_a_rerun_replays_every_recorded_turn_without_a_request(journal):
    script = (
        WireReply(content=None, tool_calls=[call("send_email", {"to": "a@example.com"})]),
        WireReply("sent it"),
    )
    with OpenAIWire(*script) as wire:
        first = model(wire, journal).chat(PROMPT, tools=["send_email"])
        logger = Logger()
        again = model(wire, journal, step=_with_logger(logger)).chat(PROMPT, tools=["send_email"])
    assert len(wire.requests) == 2 and SENT == [{"to": "a@example.com"}]
    assert (again.content, again.calls, again.replayed) == (first.content, 2, 2)
    assert again.messages == first.messages
    replayed = [data["replayed"] for _level, message, data in logger.entries if "call" in message]
    assert replayed == [True, True, True]  # model, tool, model


def test_a_retry_after_a_failed_call_continues_from_the_first_unrecorded_turn(journal):
    script = (
        WireReply(content=None, tool_calls=[call("send_email", {"to": "b@example.com"})]),
        WireError(503, "overloaded", "server_error"),
    )
    with OpenAIWire(*script) as wire:
        with pytest.raises(RetryableStepError):
            model(wire, journal).chat(PROMPT, tools=["send_email"])
        wire.answer(WireReply("finally"))
        durable = model(wire, journal)
        outcome = durable.chat(PROMPT, tools=["send_email"])
    assert outcome.content == "finally"
    assert len(wire.requests) == 3  # turn 1, the failed turn 2, turn 2 again: turn 1 not repeated
    assert SENT == [{"to": "b@example.com"}]
    assert durable.usage.document()["modelCalls"] == 2
    assert durable.usage.document()["replayedCalls"] == 1


def test_a_started_non_idempotent_call_without_a_result_asks_the_operator(journal):
    step_journal = journal.bound("s-1", "work", "agent-1")
    script = (
        WireReply(content=None, tool_calls=[call("send_email", {"to": "c@example.com"})]),
        WireReply("ok"),
    )
    with OpenAIWire(*script) as wire:
        model(wire, journal).chat(PROMPT, tools=["send_email"])
        # the worker died after the tool began and before its result was recorded:
        step_journal.forget("c1|t0")
        step_journal.forget("c2")
        step_journal.mark("c1|t0|started", {"at": 1})
        with pytest.raises(InputRequired) as asked:
            model(wire, journal).chat(PROMPT, tools=["send_email"])
        assert "may or may not have taken effect" in asked.value.question
        assert asked.value.schema["required"] == ["action"]
        answered = _answered({"action": "result", "result": {"sent": True, "by": "operator"}})
        outcome = model(wire, journal, step=answered).chat(PROMPT, tools=["send_email"])
    assert outcome.content == "ok"
    assert SENT == [{"to": "c@example.com"}]  # the first run's only: not run again
    assert json.loads(tool_messages(wire.requests[-1])[0]["content"]) == {
        "sent": True,
        "by": "operator",
    }


@pytest.mark.parametrize("action, runs", [("rerun", 2), ("skip", 1)])
def test_the_operator_may_rerun_or_skip_an_unrecorded_call(journal, action, runs):
    step_journal = journal.bound("s-1", "work", "agent-1")
    script = (
        WireReply(content=None, tool_calls=[call("send_email", {"to": "d@example.com"})]),
        WireReply("ok"),
    )
    with OpenAIWire(*script) as wire:
        model(wire, journal).chat(PROMPT, tools=["send_email"])
        step_journal.forget("c1|t0")
        step_journal.forget("c2")
        step_journal.mark("c1|t0|started", {"at": 1})
        step_journal.mark("c1|t0|asked", {"kind": "unrecorded"})
        model(wire, journal, step=_answered({"action": action})).chat(PROMPT, tools=["send_email"])
    assert len(SENT) == runs
    result = json.loads(tool_messages(wire.requests[-1])[0]["content"])
    assert ("error" in result) == (action == "skip")


def test_ask_operator_in_a_loop_gets_its_own_answer_and_a_later_question_asks_again(journal):
    script = (
        WireReply(content=None, tool_calls=[call("ask_operator", {"question": "Which city?"})]),
        WireReply(
            content=None, tool_calls=[call("ask_operator", {"question": "Which day?"}, "c2")]
        ),
        WireReply("Paris on Monday"),
    )
    with OpenAIWire(*script) as wire:
        with pytest.raises(InputRequired, match="Which city"):
            model(wire, journal).chat(PROMPT, tools=["ask_operator"])
        with pytest.raises(InputRequired, match="Which day"):
            model(wire, journal, step=_answered("Paris")).chat(PROMPT, tools=["ask_operator"])
        outcome = model(wire, journal, step=_answered("Monday")).chat(
            PROMPT, tools=["ask_operator"]
        )
    assert outcome.content == "Paris on Monday"
    answers = [json.loads(m["content"])["answer"] for m in tool_messages(wire.requests[-1])]
    assert answers == ["Paris", "Monday"]
    assert len(wire.requests) == 3  # each model turn once


class Sink:
    """A step run's delta sink that records what it is given."""

    opened = 0

    def __init__(self) -> None:
        Sink.opened += 1
        self.events: list[str] = []

    def on_delta(self, text: str) -> None:
        self.events.append(text)

    def flush(self) -> None:
        self.events.append("<flush>")

    def close(self) -> None:
        self.events.append("<close>")


def test_streamed_text_reaches_the_sink_and_the_record_holds_the_whole_reply(journal):
    sinks: list[Sink] = []
    with OpenAIWire(WireReply("one two three")) as wire:
        durable = model(
            wire, journal, stream=True, deltas=lambda: sinks.append(Sink()) or sinks[-1]
        )
        outcome = durable.chat(PROMPT)
        durable.close()
    [sink] = sinks
    assert sink.events == ["one", " two", " three", "<flush>", "<close>"]
    assert outcome.content == "one two three" and wire.requests[0].body["stream"] is True
    recorded = journal.bound("s-1", "work", "agent-1").get("c1")
    assert recorded["reply"]["content"] == "one two three"
    assert recorded["prompt"] == PROMPT


def test_a_runs_calls_stream_into_one_sink_a_paragraph_apart_and_replays_stream_nothing(journal):
    sinks: list[Sink] = []
    script = (
        WireReply("Let me add.", tool_calls=[call("add", {"a": 1, "b": 2})]),
        WireReply(content=None, tool_calls=[call("add", {"a": 3, "b": 3}, "c2")]),
        WireReply("It is 6."),
    )
    with OpenAIWire(*script) as wire:
        durable = model(
            wire, journal, stream=True, deltas=lambda: sinks.append(Sink()) or sinks[-1]
        )
        durable.chat(PROMPT, tools=["add"])
        durable.close()
        replayed = model(
            wire, journal, stream=True, deltas=lambda: sinks.append(Sink()) or sinks[-1]
        )
        replayed.chat(PROMPT, tools=["add"])
        replayed.close()
    [sink] = sinks  # the replay made no call, so it opened no sink
    text = "".join(e for e in sink.events if not e.startswith("<"))
    assert text == "Let me add.\n\nIt is 6."
    assert sink.events.count("<flush>") == 3 and sink.events[-1] == "<close>"


def _answered(answer: Any) -> StepInput:
    from dataclasses import replace

    return replace(STEP, input_provided=True, operator_input=answer)


def _with_logger(logger: Logger) -> StepInput:
    from dataclasses import replace

    return replace(STEP, logger=logger)


@pytest.mark.parametrize(
    "retry_after_s, expected_s", [(None, 1.0), (0.5, 1.0), (7.0, 7.0), (90.0, 30.0)]
)
def test_a_step_retry_waits_as_long_as_the_model_asked_within_the_backoff_cap(
    real_redis, retry_after_s, expected_s
):
    from orchestrator.core.errors import ModelUnavailableError
    from orchestrator.core.models import OrchestrateRequest
    from orchestrator.settings import Settings
    from tests.support.world import build_world

    settings = Settings(retry_backoff_s=1.0, retry_backoff_max_s=30.0)
    world = build_world(real_redis, settings)
    plan = {"steps": [{"id": "a", "title": "a", "requiredCapabilities": ["web_research"]}]}
    request = OrchestrateRequest.model_validate({"goal": "g", "plan": plan})
    sid = world.engine.submit(request).session_id
    run = world.lifecycle.begin(sid, "a", "researcher-001")
    sent_before = len(world.dispatcher.sent)
    error = ModelUnavailableError("429", retry_after_s=retry_after_s, details={})
    assert world.lifecycle.fail(run, error).code == "ok"
    [(_dispatch, countdown_s)] = world.dispatcher.sent[sent_before:]
    assert countdown_s == expected_s
