"""The durable tool loop: ``step_input.llm``, the model an agent chats with during a step.

``DurableModel.chat`` runs OpenAI's tools protocol: it calls the model with the conversation and
the tools' schemas; when the reply asks for tool calls (one or several: parallel calls are run
in the order given), each runs through the tool registry and its result goes back as a ``tool``
message; the loop ends when the model answers without calling a tool, or fails the step after
MEOWSTIK_LLM_MAX_TURNS calls. A tool's error is a result the model reads, not a step failure.

Durability (the step's record, orchestrator/store/turns.py): every model reply and every tool
result is recorded before it is used. When the step runs again (a retry, a redelivery after its
worker died, a resume after operator input), the n-th call of the run reads the n-th record
instead of calling, so no model call is paid twice and no tool runs twice for the same turn:

    model call c<n>     recorded?  yes: replay it (no request)       no: call, record, use
    tool call c<n>|t<i> recorded?  yes: replay its result
                        idempotent tool: run it, record the result
                        not idempotent: mark "started", run, record; a run that finds the
                            mark without a result asks the operator (rerun / skip / give the
                            result) instead of running it blindly

Replay is by position, as in Temporal: an agent must make the same calls in the same order when
it runs again. Calls whose request differs from the recorded one are logged with a warning.
Every call is logged at agent level (arguments cut to 500 characters, duration, tokens, result
size), and the tokens of every call the step used (replayed ones too: each was paid once) add
up to the step's ``usage``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn, Protocol

from orchestrator.core.chat import ChatOutcome, ModelReply, Usage, add_usage
from orchestrator.core.errors import PermanentStepError
from orchestrator.core.prices import PriceTable, usd
from orchestrator.core.steps import InputRequired, StepInput
from orchestrator.core.tools import ToolContext, ToolRegistry, ToolResult
from orchestrator.store.turns import StepJournal
from workers.executors.model_client import ModelClient
from workers.tracing import tool_call

SHOWN_ARGUMENT_CHARS = 500
RECORDED_MESSAGE_CHARS = 20_000
UNRECORDED_ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"enum": ["rerun", "skip", "result"]},
        "result": {"description": "with action 'result': what the call returned"},
    },
    "required": ["action"],
}


class DeltaSink(Protocol):
    """Where streamed replies' text goes as it arrives (the session's step.delta events): one
    sink per step run, flushed after each call and closed when the run ends."""

    def on_delta(self, text: str) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class CallBudget(Protocol):
    """The session's budget as one step run sees it (orchestrator/engine/budgets.py): checked
    before each model call that is not replayed; ``before_call`` raises CallRefused when the
    call would cross it (the step is parked), or the session ended or the run lost the step."""

    def before_call(self, hold: str, model: str) -> None: ...
    def release(self, hold: str) -> None: ...


@dataclass
class StepUsage:
    """The tokens of every model call a step used, in total and by model."""

    calls: int = 0
    replayed: int = 0
    unknown: int = 0  # calls whose server counted no tokens
    uncosted: int = 0  # calls without a price
    cost_pico: int = 0
    total: Usage | None = None
    by_model: dict[str, Usage] = field(default_factory=dict)

    def add(self, reply: ModelReply, replayed: bool, cost_pico: int | None = None) -> None:
        self.calls += 1
        self.replayed += int(replayed)
        if cost_pico is None:
            self.uncosted += 1
        else:
            self.cost_pico += cost_pico
        if reply.usage is None:
            self.unknown += 1
            return
        self.total = add_usage(self.total, reply.usage)
        self.by_model[reply.model] = add_usage(self.by_model.get(reply.model), reply.usage)  # type: ignore[assignment]

    def document(self) -> dict[str, Any] | None:
        """The step record's ``usage``: None when the step made no model call."""
        if self.calls == 0:
            return None
        total = self.total or Usage(0, 0, 0)
        return {
            **total.as_log_data(),
            "modelCalls": self.calls,
            "replayedCalls": self.replayed,
            "uncountedCalls": self.unknown,
            "costUsd": usd(self.cost_pico) if self.uncosted < self.calls else None,
            "uncostedCalls": self.uncosted,
            "byModel": {model: usage.as_log_data() for model, usage in self.by_model.items()},
        }


class DurableModel:
    """``step_input.llm`` for one step run (see the module docstring).

    Args:
        client: the agent's model at its endpoint.
        tools: every registered tool; ``allowed_tools`` are those the agent's capabilities name.
        journal: the step's record for this agent.
        step_input: the step (tools get it through their ToolContext).
        max_turns: MEOWSTIK_LLM_MAX_TURNS.
        stream: whether calls stream by default; ``deltas`` opens a sink for one call's text.
        temperature, max_tokens: the agent's defaults.
        prices: the price table each new call's cost comes from (None: costs not counted).
        budget: the session's budget, checked before each new call (None: not checked).
    """

    def __init__(
        self,
        client: ModelClient,
        tools: ToolRegistry,
        journal: StepJournal,
        step_input: StepInput,
        *,
        allowed_tools: Collection[str],
        max_turns: int,
        stream: bool = False,
        deltas: Callable[[], DeltaSink] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        prices: PriceTable | None = None,
        budget: CallBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.client = client
        self.prices = prices
        self.budget = budget
        self.tools = tools
        self.allowed_tools = frozenset(allowed_tools)
        self.journal = journal
        self.step_input = step_input
        self.max_turns = max_turns
        self.stream = stream
        self.deltas = deltas
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.usage = StepUsage()
        self._clock, self._now_ms = clock, now_ms
        self._calls = 0
        self._sink: DeltaSink | None = None
        self._warned_price = False
        self._streamed = False  # some text went to the sink (the next call's starts a paragraph)

    def close(self) -> None:
        """End the run: the streamed text's last chunk, and the model's connections."""
        try:
            if self._sink is not None:
                self._sink.close()
        finally:
            self.client.close()

    @property
    def model(self) -> str:
        return self.client.model

    def chat(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[str] = (),
        response_format: dict[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stream: bool | None = None,
    ) -> ChatOutcome:
        """See ``orchestrator.core.chat.StepModel.chat``."""
        specs = self._tool_specs(tools)
        conversation = [dict(message) for message in messages]
        options = {
            "tools": specs or None,
            "response_format": response_format,
            "temperature": self.temperature if temperature is None else temperature,
            "max_tokens": self.max_tokens if max_tokens is None else max_tokens,
        }
        chat_usage: Usage | None = None
        calls = replayed = 0
        for _ in range(self.max_turns):
            self._calls += 1
            name = f"c{self._calls}"
            reply, was_replayed = self._model_call(
                name, conversation, options, self.stream if stream is None else stream, calls == 0
            )
            calls += 1
            replayed += int(was_replayed)
            chat_usage = add_usage(chat_usage, reply.usage)
            conversation.append(reply.assistant_message())
            if not reply.tool_calls or not specs:
                return ChatOutcome(reply.content, reply, conversation, calls, replayed, chat_usage)
            for index, call in enumerate(reply.tool_calls):
                result = self._tool_call(f"{name}|t{index}", call.name, call.arguments_json)
                conversation.append(
                    {"role": "tool", "tool_call_id": call.id, "content": _json(result)}
                )
        raise PermanentStepError(
            f"the model ({self.client.service}) was still calling tools after {self.max_turns} "
            "calls (MEOWSTIK_LLM_MAX_TURNS); raise the limit, or tell the model in its "
            "systemPrompt when to stop and answer.",
            details={"maxTurns": self.max_turns, "tools": list(tools)},
        )

    # --- model calls ----------------------------------------------------------------------------
    def _model_call(
        self,
        name: str,
        conversation: list[dict[str, Any]],
        options: dict[str, Any],
        stream: bool,
        first: bool,
    ) -> tuple[ModelReply, bool]:
        fingerprint = _fingerprint(self.client.model, conversation, options)
        recorded = self.journal.get(name)
        if recorded is not None:
            reply = ModelReply.from_document(recorded["reply"])
            self.usage.add(reply, replayed=True, cost_pico=recorded.get("costPico"))
            self._log_model(name, reply, recorded.get("durationMs"), replayed=True)
            if recorded.get("request") != fingerprint:
                self._log(
                    "warn",
                    "replayed model call differs from its request",
                    call=name,
                    hint="replay is by position: the agent asked something else this time",
                )
            return reply, True
        hold = self.journal.field(name)
        if self.budget is not None:  # may park the step: CallRefused
            self.budget.before_call(hold, self.client.model)
        on_delta = self._delta_target() if stream else None
        started = self._clock()
        try:
            reply = self.client.complete(
                conversation,
                stream=stream,
                on_delta=on_delta,
                **{key: value for key, value in options.items() if value is not None},
            )
        except BaseException:
            if self.budget is not None:
                self.budget.release(hold)
            raise
        finally:
            if on_delta is not None and self._sink is not None:
                self._sink.flush()
        duration_ms = round((self._clock() - started) * 1000, 1)
        document: dict[str, Any] = {
            "kind": "model",
            "reply": reply.to_document(),
            "request": fingerprint,
            "endpoint": self.client.endpoint_name,
            "at": self._now_ms(),
            "durationMs": duration_ms,
            "messages": len(conversation),
        }
        if first:  # the chat's prompt and the tools it offers, for the transcript
            document["prompt"] = [_shortened(message) for message in conversation]
            document["tools"] = [spec["function"]["name"] for spec in options["tools"] or []]
        cost_pico = self._cost_pico(reply)
        document["costPico"] = cost_pico
        kept = self.journal.record_call(
            name,
            document,
            model=self.client.model,
            usage=reply.usage,
            cost_pico=cost_pico,
            now_ms=document["at"],
        )
        reply = ModelReply.from_document(kept["reply"])  # another run's, if it recorded first
        self.usage.add(reply, replayed=False, cost_pico=kept.get("costPico"))
        self._log_model(name, reply, duration_ms, replayed=False)
        return reply, False

    def _cost_pico(self, reply: ModelReply) -> int | None:
        """The call's cost from the price table; None (and a warning, once) without a price."""
        if self.prices is None or reply.usage is None:
            return None
        cost = self.prices.cost_pico(reply.usage, self.client.model, reply.model)
        if cost is None and not self._warned_price:
            self._warned_price = True
            self._log(
                "warn",
                "no price for this model: its tokens are counted, its cost is not",
                model=self.client.model,
                servedBy=reply.model,
                prices=self.prices.source,
                hint="add it to a prices file named by MEOWSTIK_PRICES_FILE",
            )
        return cost

    def _delta_target(self) -> Callable[[str], None] | None:
        """Where this call's text goes: the run's sink, a blank line after earlier calls' text."""
        if self.deltas is None:
            return None
        if self._sink is None:
            self._sink = self.deltas()
        sink, first = self._sink, [True]

        def on_delta(text: str) -> None:
            if first[0] and self._streamed:
                sink.on_delta("\n\n")
            first[0], self._streamed = False, True
            sink.on_delta(text)

        return on_delta

    def _log_model(self, name: str, reply: ModelReply, duration_ms: Any, *, replayed: bool) -> None:
        self._log(
            "info",
            "model call",
            call=name,
            endpoint=self.client.endpoint_name,
            model=self.client.model,
            servedBy=reply.model,
            finishReason=reply.finish_reason,
            usage=reply.usage.as_log_data() if reply.usage else "unknown",
            toolCalls=[call.name for call in reply.tool_calls],
            durationMs=duration_ms,
            replayed=replayed,
        )

    # --- tool calls -----------------------------------------------------------------------------
    def _tool_specs(self, names: Sequence[str]) -> list[dict[str, Any]]:
        for tool_name in names:
            if tool_name not in self.tools:
                raise PermanentStepError(
                    f"tool {tool_name!r} is not registered on this worker; registered: "
                    f"{', '.join(self.tools.names())}. Register it (MEOWSTIK_TOOL_MODULES or "
                    "the meowstik.tools entry points) on the workers running this agent.",
                    details={"tool": tool_name},
                )
            if tool_name not in self.allowed_tools:
                raise PermanentStepError(
                    f"agent {self.step_input.agent_id!r} may not use tool {tool_name!r}: an "
                    "agent uses the tools its capabilities name (capabilities[].tools); it "
                    f"names {sorted(self.allowed_tools) or 'none'}.",
                    details={"tool": tool_name, "allowedTools": sorted(self.allowed_tools)},
                )
        return self.tools.openai_tools(names)

    def _tool_call(self, name: str, tool_name: str, arguments: str) -> Any:
        recorded = self.journal.get(name)
        if recorded is not None:
            self._log_tool(name, tool_name, arguments, recorded, replayed=True)
            return recorded["result"]
        idempotent = self.tools.get(tool_name).idempotent if tool_name in self.tools else True
        asked = self.journal.get(f"{name}|asked")
        answered = asked is not None and self.step_input.input_provided
        if asked is not None and asked.get("kind") == "unrecorded":
            decided = self._decided(name, tool_name, arguments, answered)
            if decided is not None:
                return decided
        elif not idempotent and self.journal.get(f"{name}|started") is not None:
            self._ask_unrecorded(name, tool_name, arguments)
        if not idempotent:
            self.journal.mark(f"{name}|started", {"at": self._now_ms()})
        step_input = self.step_input
        if not answered or (asked or {}).get("kind") != "tool":
            # an operator's answer belongs to the call that asked for it
            step_input = replace(step_input, input_provided=False, operator_input=None)
        started = self._clock()
        try:
            with tool_call(tool_name, name) as traced:
                result = self.tools.invoke(tool_name, arguments, ToolContext(step_input))
                traced.result(result)
        except InputRequired:
            self.journal.forget(f"{name}|started")  # asking has no effect to repeat
            self.journal.mark(f"{name}|asked", {"kind": "tool", "at": self._now_ms()})
            raise
        return self._record_tool(name, tool_name, arguments, result, started)

    def _record_tool(
        self, name: str, tool_name: str, arguments: str, result: ToolResult, started: float
    ) -> Any:
        document = {
            "kind": "tool",
            "tool": tool_name,
            "arguments": arguments,
            "result": result.document(),
            "ok": result.ok,
            "at": self._now_ms(),
            "durationMs": round((self._clock() - started) * 1000, 1),
        }
        kept = self.journal.record(name, document)
        self._log_tool(name, tool_name, arguments, kept, replayed=False)
        return kept["result"]

    def _ask_unrecorded(self, name: str, tool_name: str, arguments: str) -> NoReturn:
        """A non-idempotent call began in an earlier run and left no result: ask a person."""
        self.journal.mark(f"{name}|asked", {"kind": "unrecorded", "at": self._now_ms()})
        self._log("warn", "tool call outcome unknown", call=name, tool=tool_name)
        raise InputRequired(
            f"Tool {tool_name} (not idempotent) was called with {_cut(arguments)} in an earlier "
            "run of this step, which stopped before its result was recorded: it may or may not "
            'have taken effect. Answer {"action": "rerun"} to run it again, {"action": "skip"} '
            'to tell the model it did not run, or {"action": "result", "result": ...} with '
            "what it returned.",
            schema=UNRECORDED_ANSWER_SCHEMA,
        )

    def _decided(self, name: str, tool_name: str, arguments: str, answered: bool) -> Any:
        """Apply the operator's decision on an unrecorded call; None means run it again."""
        decision = self.step_input.operator_input if answered else None
        action = decision.get("action") if isinstance(decision, dict) else None
        if action == "rerun":
            self.journal.forget(f"{name}|asked")
            return None
        if action == "result":
            result = ToolResult(value=decision.get("result"))  # type: ignore[union-attr]
        elif action == "skip":
            result = ToolResult.failure(
                "not_run", "an operator chose not to run this call again; it did not run"
            )
        else:
            self._ask_unrecorded(name, tool_name, arguments)
        return self._record_tool(name, tool_name, arguments, result, self._clock())

    def _log_tool(
        self, name: str, tool_name: str, arguments: str, document: dict[str, Any], *, replayed: bool
    ) -> None:
        self._log(
            "info",
            "tool call",
            call=name,
            tool=tool_name,
            arguments=_cut(arguments),
            ok=document.get("ok"),
            resultBytes=len(_json(document.get("result"))),
            durationMs=document.get("durationMs"),
            replayed=replayed,
        )

    def _log(self, level: str, message: str, **data: Any) -> None:
        logger = self.step_input.logger
        if logger is not None:
            getattr(logger, level)(message, **data)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _cut(text: str, limit: int = SHOWN_ARGUMENT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _shortened(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, str) and len(content) > RECORDED_MESSAGE_CHARS:
        return {**message, "content": _cut(content, RECORDED_MESSAGE_CHARS)}
    return message


def _fingerprint(model: str, conversation: list[dict[str, Any]], options: dict[str, Any]) -> str:
    body = json.dumps([model, conversation, options], sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:16]
