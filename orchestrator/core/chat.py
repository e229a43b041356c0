"""Chat with a model (pure): what one call returns, what a whole chat (a tool loop) returns, and
``StepModel``, the model an agent reaches through ``step_input.llm``.

One call's reply is a ``ModelReply`` (content, tool calls, finish reason, usage). A durable tool
loop records each reply as JSON (``ModelReply.to_document``) before it trusts it, and a replay
reads it back (``ModelReply.from_document``) instead of paying for the call again. A chat's
``ChatOutcome`` says what the model finally answered, how many turns that took, which of them
were replayed, and the tokens its calls cost (replayed calls cost nothing again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Usage:
    """Tokens of one call, as the server counted them (or of several calls, added up)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    def as_log_data(self) -> dict[str, int]:
        return {
            "promptTokens": self.prompt_tokens,
            "completionTokens": self.completion_tokens,
            "totalTokens": self.total_tokens,
        }

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )

    @classmethod
    def from_document(cls, document: Any) -> Usage | None:
        """The usage of ``as_log_data()``'s shape, or None when it is not one."""
        if not isinstance(document, dict):
            return None
        prompt, completion = document.get("promptTokens"), document.get("completionTokens")
        if not isinstance(prompt, int) or not isinstance(completion, int):
            return None
        total = document.get("totalTokens")
        return cls(prompt, completion, total if isinstance(total, int) else prompt + completion)


def add_usage(total: Usage | None, more: Usage | None) -> Usage | None:
    """``total + more`` where either may be unknown (None); unknown plus known is the known."""
    if more is None:
        return total
    return more if total is None else total + more


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for; ``arguments_json`` is the text it sent, which the
    caller must parse (models do send invalid JSON)."""

    id: str
    name: str
    arguments_json: str

    def to_document(self) -> dict[str, Any]:
        """As OpenAI's ``message.tool_calls[i]``."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments_json},
        }


@dataclass(frozen=True)
class ModelReply:
    """The first choice of one chat completion.

    ``usage`` is None when the server sent none (some OpenAI-compatible servers never do, and
    streams carry it only when asked): unknown, never guessed.
    """

    content: str | None
    tool_calls: list[ToolCall]
    finish_reason: str | None
    usage: Usage | None
    model: str

    def assistant_message(self) -> dict[str, Any]:
        """The reply as the ``assistant`` message that goes back into the conversation."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [call.to_document() for call in self.tool_calls]
        return message

    def to_document(self) -> dict[str, Any]:
        """The reply as JSON data (what a durable loop records)."""
        return {
            "content": self.content,
            "toolCalls": [
                {"id": call.id, "name": call.name, "arguments": call.arguments_json}
                for call in self.tool_calls
            ],
            "finishReason": self.finish_reason,
            "usage": self.usage.as_log_data() if self.usage else None,
            "model": self.model,
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> ModelReply:
        """The reply ``to_document`` recorded."""
        return cls(
            content=document.get("content"),
            tool_calls=[
                ToolCall(str(call["id"]), str(call["name"]), str(call["arguments"]))
                for call in document.get("toolCalls") or []
            ],
            finish_reason=document.get("finishReason"),
            usage=Usage.from_document(document.get("usage")),
            model=str(document.get("model") or ""),
        )


@dataclass(frozen=True)
class ChatOutcome:
    """What a chat came to: the model's final ``content`` (None when it gave none), the whole
    conversation (``messages``: the ones given, then each assistant reply and tool result), how
    many model calls it took (``calls``) and how many of those were read back from the step's
    record instead of being paid again (``replayed``), and the tokens of the calls made this
    time (``usage``; None when the server counted none). ``reply`` is the last model reply."""

    content: str | None
    reply: ModelReply
    messages: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 1
    replayed: int = 0
    usage: Usage | None = None

    @property
    def model(self) -> str:
        return self.reply.model


class StepModel(Protocol):
    """The model an agent is given as ``step_input.llm`` (when one is configured): the agent's
    own model settings, every call logged, counted, streamed and recorded with the step, so a
    retried or redelivered step replays calls instead of paying for them again. Replay matches
    calls by their order within the step: an agent must make the same calls in the same order
    when it runs again (decide from its input, not from the clock or randomness)."""

    @property
    def model(self) -> str: ...

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
        """Chat until the model answers without calling a tool (at most MEOWSTIK_LLM_MAX_TURNS
        model calls): ``tools`` are the names of registered tools the model may call; their
        results go back to it. Without tools it is one call. ``stream`` (default: the
        agent's setting) sends the text to the session's events as it arrives."""
        ...
