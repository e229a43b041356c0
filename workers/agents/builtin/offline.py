"""What the built-in agents share: the offline note, the ``Work`` a capability handler returns,
the helpers that describe a step's input without judging it, and ``OfflineAgent``, which runs a
step's handlers and wraps their work in the common offline fields.

Nothing here does I/O: every value is derived from the ``StepInput`` alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from orchestrator.core.steps import StepInput, StepResult
from orchestrator.planning.rules import read_goal
from workers.agents.base import Agent

OFFLINE_NOTE = (
    "No LLM is configured (MEOWSTIK_LLM_BASE_URL is unset), so this is deterministic offline work"
    " derived only from the step's input, not researched or generated content: nothing was looked"
    " up, written or run."
)
PREVIEW_CHARS = 80
SUBJECT_CHARS = 120
MAX_LISTED = 10  # context entries, keys, questions or sections taken from one input
ERROR_KEYS = frozenset({"error", "errors", "exception", "traceback"})
ERROR_STATUSES = frozenset({"error", "failed", "failure"})


@dataclass(frozen=True)
class Work:
    """One capability's share of a step's output: a summary clause and the fields it adds."""

    summary: str
    fields: dict[str, Any]


def clip(text: str, limit: int = PREVIEW_CHARS) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def count(number: int, noun: str, plural: str = "") -> str:
    """``number`` with ``noun`` in the right number: "1 item", "3 items"."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def preview(value: Any) -> str:
    """A short, JSON-safe rendering of any input value (strings shown without quotes)."""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    return clip(" ".join(value.split()))


def previews(mapping: Mapping[str, Any]) -> dict[str, str]:
    """Previews of the first MAX_LISTED entries of ``mapping``, by key."""
    return {str(key): preview(value) for key, value in list(mapping.items())[:MAX_LISTED]}


def is_offline(value: Any) -> bool:
    """Whether ``value`` is the output of an offline agent."""
    return isinstance(value, Mapping) and value.get("mode") == "offline"


def _is_empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, (Mapping, list, tuple)) and not value)


def _looks_like_error(value: Any) -> bool:
    if isinstance(value, Mapping):
        flagged = any(str(key).casefold() in ERROR_KEYS and value[key] for key in value)
        return flagged or str(value.get("status", "")).casefold() in ERROR_STATUSES
    if isinstance(value, str):
        return value.strip().casefold().startswith(("error", "traceback", "exception"))
    return False


def describe(step_id: str, value: Any) -> dict[str, Any]:
    """What can be said about one dependency output without judging its content."""
    keys = sorted(str(key) for key in value)[:MAX_LISTED] if isinstance(value, Mapping) else []
    shown = value.get("summary", value) if is_offline(value) else value
    return {
        "stepId": step_id,
        "offline": is_offline(value),
        "empty": _is_empty(value),
        "errorLike": _looks_like_error(value),
        "keys": keys,
        "preview": preview(shown),
    }


def input_digest(step_input: StepInput) -> dict[str, Any]:
    """Keys and short previews of everything the step was given."""
    return {
        "dependencies": [describe(i, v) for i, v in step_input.dependencies.items()],
        "initialContext": previews(step_input.initial_context),
        "sharedStateKeys": sorted(str(key) for key in step_input.shared_state)[:MAX_LISTED],
    }


def step_subject(step_input: StepInput) -> str:
    """What the step is about: the rule planner's ``item`` or ``subject``, else the title's."""
    parameters = step_input.step.parameters
    given = [parameters.get(name) for name in ("item", "subject")]
    text = next((g for g in given if isinstance(g, str) and g.strip()), None)
    return clip(text or read_goal(step_input.step.title or step_input.goal).subject, SUBJECT_CHARS)


class OfflineAgent(Agent):
    """An agent that works without an LLM: a step gets the work of every handler among its
    required capabilities (the default one when none match), beside the common offline fields."""

    handlers: ClassVar[Mapping[str, Callable[[StepInput], Work]]]
    default_capability: ClassVar[str]

    def run(self, step_input: StepInput) -> StepResult:
        chosen = [c for c in step_input.step.required_capabilities if c in self.handlers]
        capabilities = dict.fromkeys(chosen or [self.default_capability])
        works = [self.handlers[capability](step_input) for capability in capabilities]
        summary = "; ".join(work.summary for work in works)
        output: dict[str, Any] = {
            "mode": "offline",
            "agentId": self.definition.id,
            "stepId": step_input.step_id,
            "summary": f"{summary[:1].upper()}{summary[1:]} (offline).",
            "note": OFFLINE_NOTE,
            "inputsUsed": list(step_input.dependencies),
        }
        if step_input.subtask_ids:  # a parent step: built on its subtasks' outputs
            output["subtasksUsed"] = list(step_input.subtask_outputs)
        for work in works:
            output.update(work.fields)
        return StepResult(output=output)
