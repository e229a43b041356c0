"""A step's transcript (pure): the model calls and tool calls its durable tool loops recorded
(orchestrator/store/turns.py), in order, per agent that ran it, as
``GET /api/orchestrator/sessions/<id>/steps/<step id>/transcript`` shows them.

Each agent's calls come in the order they happened: model call ``c1``, its tool calls ``c1|t0``,
``c1|t1``..., then ``c2``. A tool call that began without a recorded result is ``pending``
(``state`` says whether it is waiting for an operator). Nothing here holds a key: the record
never stored one.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from orchestrator.core.chat import Usage
from orchestrator.core.logentry import iso_from_ms
from orchestrator.core.models import CamelModel, TokenCounts

_FIELD = re.compile(r"^(?P<agent>[^|]+)\|c(?P<call>\d+)(?:\|t(?P<tool>\d+))?(?:\|(?P<mark>\w+))?$")


class TranscriptToolCall(CamelModel):
    """A tool call as the model asked for it."""

    id: str
    name: str
    arguments: str


class TranscriptEntry(CamelModel):
    """One model call (``kind`` model), tool call (tool) or unfinished tool call (pending)."""

    call: str  # c<n> or c<n>|t<i>
    kind: Literal["model", "tool", "pending"]
    at: str | None = None
    duration_ms: float | None = None
    # model calls
    endpoint: str | None = None
    model: str | None = None
    finish_reason: str | None = None
    content: str | None = None
    tool_calls: list[TranscriptToolCall] = Field(default_factory=list)
    usage: TokenCounts | None = None
    prompt: list[dict[str, Any]] | None = None  # the chat's opening messages (its first call)
    tools_offered: list[str] | None = None  # the tools the chat offers (its first call)
    # tool calls
    tool: str | None = None
    arguments: str | None = None
    result: Any = None
    ok: bool | None = None
    # pending tool calls: "running" (or its run died), "waiting_for_operator"
    state: str | None = None


class AgentTranscript(CamelModel):
    agent_id: str
    calls: list[TranscriptEntry]
    usage: TokenCounts | None = None  # of its model calls, when the server counted them


class StepTranscript(CamelModel):
    session_id: str
    step_id: str
    agents: list[AgentTranscript]


def build_transcript(
    session_id: str, step_id: str, entries: dict[str, dict[str, Any]]
) -> StepTranscript:
    """The transcript of ``entries`` (``TurnJournal.step_entries``: field -> document)."""
    by_agent: dict[str, dict[tuple[int, int], dict[str, Any]]] = {}
    marks: dict[str, dict[tuple[int, int], dict[str, Any]]] = {}
    prefix = f"{step_id}|"
    for field, document in entries.items():
        match = _FIELD.match(field.removeprefix(prefix))
        if not field.startswith(prefix) or match is None:
            continue
        agent = match["agent"]
        position = (int(match["call"]), -1 if match["tool"] is None else int(match["tool"]))
        if match["mark"]:
            marks.setdefault(agent, {}).setdefault(position, {})[match["mark"]] = document
        else:
            by_agent.setdefault(agent, {})[position] = document
    agents = []
    for agent in sorted(set(by_agent) | set(marks), key=lambda a: _first_at(by_agent.get(a))):
        recorded = by_agent.get(agent, {})
        pending = {p: m for p, m in marks.get(agent, {}).items() if p not in recorded}
        calls = [_entry(p, recorded[p]) for p in recorded]
        calls += [_pending(p, m) for p, m in pending.items()]
        calls.sort(key=lambda entry: _position(entry.call))
        agents.append(AgentTranscript(agent_id=agent, calls=calls, usage=_usage(calls)))
    return StepTranscript(session_id=session_id, step_id=step_id, agents=agents)


def _entry(position: tuple[int, int], document: dict[str, Any]) -> TranscriptEntry:
    common: dict[str, Any] = {
        "call": _name(position),
        "at": iso_from_ms(document.get("at")),
        "duration_ms": document.get("durationMs"),
    }
    if document.get("kind") == "tool":
        return TranscriptEntry(
            kind="tool",
            tool=document.get("tool"),
            arguments=document.get("arguments"),
            result=document.get("result"),
            ok=document.get("ok"),
            **common,
        )
    reply = document.get("reply") or {}
    usage = Usage.from_document(reply.get("usage"))
    return TranscriptEntry(
        kind="model",
        endpoint=document.get("endpoint"),
        model=reply.get("model"),
        finish_reason=reply.get("finishReason"),
        content=reply.get("content"),
        tool_calls=[TranscriptToolCall.model_validate(c) for c in reply.get("toolCalls") or []],
        usage=TokenCounts.model_validate(usage.as_log_data()) if usage else None,
        prompt=document.get("prompt"),
        tools_offered=document.get("tools"),
        **common,
    )


def _pending(position: tuple[int, int], found: dict[str, dict[str, Any]]) -> TranscriptEntry:
    asked = "asked" in found
    at = (found.get("started") or found.get("asked") or {}).get("at")
    return TranscriptEntry(
        call=_name(position),
        kind="pending",
        at=iso_from_ms(at),
        state="waiting_for_operator" if asked else "running",
    )


def _usage(calls: list[TranscriptEntry]) -> TokenCounts | None:
    counted = [call.usage for call in calls if call.usage is not None]
    if not counted:
        return None
    return TokenCounts(
        prompt_tokens=sum(u.prompt_tokens for u in counted),
        completion_tokens=sum(u.completion_tokens for u in counted),
        total_tokens=sum(u.total_tokens for u in counted),
    )


def _name(position: tuple[int, int]) -> str:
    call, tool = position
    return f"c{call}" if tool < 0 else f"c{call}|t{tool}"


def _position(name: str) -> tuple[int, int]:
    call, _, tool = name.partition("|t")
    return int(call[1:]), int(tool) if tool else -1


def _first_at(recorded: dict[tuple[int, int], dict[str, Any]] | None) -> int:
    times = [doc.get("at") or 0 for doc in (recorded or {}).values()]
    return min(times) if times else 0
