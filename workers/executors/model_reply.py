"""What one chat-model call returns, and how a streamed reply is put back together.

A streamed reply arrives as ``chat.completion.chunk`` objects (see ../shared/FIELD-NOTES.md,
"The OpenAI chat wire protocol"): ``delta.content`` fragments to join in order, and
``delta.tool_calls`` fragments keyed by ``index``, the first carrying ``id``, ``type`` and
``function.name``, the later ones appending to ``function.arguments`` (valid JSON only once
joined). Usage, when the server sends it at all, comes in a last chunk whose ``choices`` is empty.
``StreamAssembly`` folds the chunks into the same ``ModelReply`` a non-streamed call gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.chat import ModelReply, ToolCall, Usage

__all__ = [
    "TRUNCATED",
    "ModelReply",
    "StreamAssembly",
    "ToolCall",
    "Usage",
    "tool_calls_of",
    "usage_of",
]

TRUNCATED = "length"  # the finish_reason of a reply cut at max_tokens: not a success


def usage_of(raw: Any) -> Usage | None:
    """The ``usage`` object of a completion or chunk, or None when absent or incomplete."""
    if raw is None:
        return None
    prompt = getattr(raw, "prompt_tokens", None)
    completion = getattr(raw, "completion_tokens", None)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    total = getattr(raw, "total_tokens", None)
    return Usage(prompt, completion, total if isinstance(total, int) else prompt + completion)


def tool_calls_of(raw: Any) -> list[ToolCall]:
    """The function calls of a non-streamed message (others, e.g. custom tools, are skipped)."""
    calls = []
    for call in raw or []:
        function = getattr(call, "function", None)
        if function is None:
            continue
        calls.append(
            ToolCall(
                id=str(getattr(call, "id", "") or ""),
                name=str(getattr(function, "name", "") or ""),
                arguments_json=str(getattr(function, "arguments", "") or ""),
            )
        )
    return calls


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class StreamAssembly:
    """Chunks folded into one reply. ``add`` returns the content fragment the chunk carried
    (empty when none), so the caller can hand it on as it arrives."""

    model: str
    content: list[str] = field(default_factory=list)
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage | None = None
    chunks: int = 0

    def add(self, chunk: Any) -> str:
        self.chunks += 1
        self.model = getattr(chunk, "model", None) or self.model
        usage = usage_of(getattr(chunk, "usage", None))
        if usage is not None:
            self.usage = usage
        fragment = ""
        for choice in getattr(chunk, "choices", None) or []:
            if getattr(choice, "index", 0) != 0:
                continue  # only the first choice is used (n is never set above 1)
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
            delta = choice.delta
            if delta is None:
                continue
            if delta.content:
                fragment += delta.content
                self.content.append(delta.content)
            for piece in delta.tool_calls or []:
                self._add_call_fragment(piece)
        return fragment

    def _add_call_fragment(self, piece: Any) -> None:
        partial = self.calls.setdefault(piece.index, _PartialCall())
        partial.id = piece.id or partial.id
        function = piece.function
        if function is not None:
            partial.name = function.name or partial.name
            if function.arguments:
                partial.arguments.append(function.arguments)

    def reply(self) -> ModelReply:
        calls = [
            ToolCall(partial.id, partial.name, "".join(partial.arguments))
            for _, partial in sorted(self.calls.items())
        ]
        content = "".join(self.content) if self.content else None
        return ModelReply(content, calls, self.finish_reason, self.usage, self.model)
