"""The LLM planner: ask an OpenAI-compatible chat model for a plan, validate it, and send it back
with the errors for repair until it is valid or the attempts run out.

The prompt lists the registered agents and their capabilities. A reply must be one JSON object
``{"steps": [...]}`` (bare or in a ```json fence) whose steps pass the same checks as a client's
explicit plan: the request models, then the graph (duplicate ids, unknown dependencies, cycles,
depth), the limits, and routability against the registry. The caller decides what happens when
no valid plan comes back (the rule planner takes over, with a warning in the session's log).

The chat model is injected (``ChatModel``), so this module does no I/O of its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from orchestrator.core.errors import OrchestratorError
from orchestrator.core.graph import PlanGraph
from orchestrator.core.models import AgentDefinition, ExplicitPlan, PlanStep

MAX_CONTEXT_CHARS = 4000
MAX_REPLY_CHARS_SHOWN = 300
MAX_ERRORS_SENT = 10
_FENCE = re.compile(r"^```[A-Za-z]*[ \t]*\n(?P<body>.*?)\n?```$", re.DOTALL)

PLAN_FORMAT = """Answer with one JSON object and nothing else, in this shape:
{"steps": [
  {"id": "research", "title": "Research the options", "description": "What to find out",
   "agentType": "researcher", "requiredCapabilities": ["web_research"], "dependsOn": [],
   "estimatedDurationS": 30, "parameters": {}},
  {"id": "build", "title": "Build it", "requiredCapabilities": ["code_generation"],
   "dependsOn": ["research"], "subtasks": [
     {"id": "part-a", "title": "First part", "requiredCapabilities": ["code_generation"]}]}
]}
Rules: ids are unique across the plan and its subtasks (letters, digits, - and _); every
requiredCapabilities entry must be a capability listed above, and agentType (optional) an agent
type listed above; dependsOn names earlier steps and must not form a cycle; a step with subtasks
runs after them and receives their outputs. Use as few steps as the goal needs."""


class ChatModel(Protocol):
    """What the planner needs of an LLM: the reply text for a chat. Raises OrchestratorError
    (e.g. RetryableStepError, PermanentStepError) when the model cannot be reached."""

    model: str

    def complete(self, messages: list[dict[str, Any]]) -> str: ...


@dataclass(frozen=True)
class LlmPlanAttempt:
    errors: list[str]
    reply_start: str


@dataclass
class LlmPlanResult:
    """The accepted steps (None when every attempt failed) and what each attempt got wrong."""

    steps: list[PlanStep] | None
    attempts: list[LlmPlanAttempt] = field(default_factory=list)
    unavailable: str | None = None  # why the model could not be asked at all

    @property
    def tries(self) -> int:
        return len(self.attempts) + (1 if self.steps is not None else 0)


def system_prompt(agents: Sequence[AgentDefinition], max_steps: int) -> str:
    lines = [
        "You are the planner of a multi-agent orchestration system. Break the user's goal "
        "into a plan: a graph of steps, each done by one agent that has every capability the "
        "step requires.",
        "Registered agents:",
    ]
    for agent in agents:
        capabilities = ", ".join(
            c.name + (f" ({c.description})" if c.description else "") for c in agent.capabilities
        )
        lines.append(f"- {agent.id}: type {agent.type}; capabilities: {capabilities}")
    lines.append(f"At most {max_steps} steps in all, subtasks included.")
    lines.append(PLAN_FORMAT)
    return "\n".join(lines)


def user_prompt(goal: str, initial_context: Mapping[str, Any]) -> str:
    context = json.dumps(initial_context, ensure_ascii=False, default=str)
    if len(context) > MAX_CONTEXT_CHARS:
        context = context[:MAX_CONTEXT_CHARS] + "… (cut)"
    return f"Goal: {goal}\nInitial context (JSON): {context}"


def repair_prompt(errors: list[str]) -> str:
    listed = "\n".join(f"- {error}" for error in errors[:MAX_ERRORS_SENT])
    return (
        f"That plan was rejected:\n{listed}\nAnswer again with the whole corrected plan as one "
        "JSON object, and nothing else."
    )


def parse_plan_reply(reply: str) -> tuple[list[PlanStep] | None, list[str]]:
    """The steps of a reply, or the reasons it is not a plan (JSON or model errors)."""
    text = reply.strip()
    fenced = _FENCE.match(text)
    candidate = fenced.group("body") if fenced else text
    try:
        document = json.loads(candidate)
    except (ValueError, RecursionError) as exc:
        return None, [f"the reply is not one JSON object ({exc}); send only the JSON object"]
    if isinstance(document, dict) and isinstance(document.get("plan"), dict):
        document = document["plan"]
    if isinstance(document, list):
        document = {"steps": document}
    if not isinstance(document, dict) or "steps" not in document:
        return None, ['the reply must be a JSON object with a "steps" list']
    try:
        plan = ExplicitPlan.model_validate({"steps": document["steps"]})
    except ValidationError as exc:
        return None, [
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        ]
    return plan.steps, []


def plan_with_llm(
    chat: ChatModel,
    goal: str,
    initial_context: Mapping[str, Any],
    agents: Sequence[AgentDefinition],
    *,
    check: Callable[[list[PlanStep]], PlanGraph],
    max_attempts: int,
    max_steps: int,
) -> LlmPlanResult:
    """Ask, validate with ``check`` (which raises PlanError or LimitExceededError), repair.

    Returns the first valid steps, or None with every attempt's errors."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system_prompt(agents, max_steps)},
        {"role": "user", "content": user_prompt(goal, initial_context)},
    ]
    result = LlmPlanResult(steps=None)
    for _ in range(max_attempts):
        try:
            reply = chat.complete(messages)
        except OrchestratorError as exc:
            result.unavailable = exc.message
            return result
        steps, errors = parse_plan_reply(reply)
        if steps is not None:
            try:
                check(steps)
                result.steps = steps
                return result
            except OrchestratorError as exc:
                errors = [exc.message]
        result.attempts.append(LlmPlanAttempt(errors, reply[:MAX_REPLY_CHARS_SHOWN]))
        messages += [
            {"role": "assistant", "content": reply},
            {"role": "user", "content": repair_prompt(errors)},
        ]
    return result
