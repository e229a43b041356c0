"""How a built-in agent works with a model (``step_input.llm``): its role prompt, one structured
answer validated against its role's schema with one repair round, and the common output fields.

A ``Role`` says what the agent does and what a good answer holds (``task``), how each of its
capabilities is done (``hints``) and the answer's schema (an ``Answer`` model). The prompt is a
system message (who the agent is, the role, the step's capabilities, how to read the input, the
JSON Schema of the answer) and a user message holding the step as one JSON document: the goal,
the step, the initial context, the shared state, the dependencies' outputs by step id, the
operator's answer when one was given and the subtasks' outputs when they ran.

The model is asked for a JSON object (``response_format`` ``json_object``). Its answer, bare or
in a ```json fence, is parsed and validated; when that fails the model is asked once more, with
the errors and the schema, and a second failure is a PermanentStepError. Prompts hold nothing
but the step's input, so a rerun makes the same calls in the same order (the runtime replays
them by order). Without a model (``llm`` None) an agent does its offline work, unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from orchestrator.core.chat import ChatOutcome, StepModel
from orchestrator.core.errors import PermanentStepError
from orchestrator.core.models import AgentDefinition
from orchestrator.core.steps import StepInput, StepResult
from workers.agents.builtin.offline import OfflineAgent

RESPONSE_FORMAT: dict[str, Any] = {"type": "json_object"}
MAX_ERRORS_SENT = 10
REPLY_START_CHARS = 300
SUMMARY_CHARS = 2000
_WHOLE_FENCE = re.compile(r"^```[A-Za-z]*[ \t]*\n(?P<body>.*?)\n?```$", re.DOTALL)
_ANY_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n(?P<body>.*?)\n?```", re.DOTALL)
_INPUT_GUIDE = (
    "You are given one step of a larger plan as a JSON document: the session's goal, the step "
    "(id, title, description, requiredCapabilities, parameters), the initial context, the shared "
    "state, and the outputs of the steps it depends on (dependencies, by step id); operatorInput "
    "when an operator answered a question, subtaskOutputs when the step's subtasks have run. "
    "Do this step, building on those inputs. When something you need is missing, say so in your "
    "answer instead of inventing it; never claim to have looked up, run or tested anything you "
    "did not."
)


class Answer(BaseModel):
    """A role's structured answer: camelCase in JSON, unknown fields dropped (never passed on
    unvalidated), text stripped. Every answer has a ``summary``."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(alias=to_camel),
        populate_by_name=True,
        extra="ignore",
        str_strip_whitespace=True,
    )

    summary: str = Field(
        min_length=1, max_length=SUMMARY_CHARS, description="What this step produced, briefly."
    )


class Part(BaseModel):
    """An item of an answer (a finding, a file, an issue, a plan step): same conventions."""

    model_config = Answer.model_config


AnswerT = TypeVar("AnswerT", bound=Answer)


@dataclass(frozen=True)
class Role:
    """What one built-in agent does with a model: its task, how it does each capability, and
    the schema of its answer."""

    task: str
    answer: type[Answer]
    hints: Mapping[str, str] = field(default_factory=dict)


def step_capabilities(
    definition: AgentDefinition, step_input: StepInput, default: str
) -> list[str]:
    """The agent's capabilities the step requires, in the step's order (``default`` if none)."""
    own = definition.capability_names
    chosen = [c for c in step_input.step.required_capabilities if c in own]
    return list(dict.fromkeys(chosen or [default]))


def step_tools(definition: AgentDefinition, capabilities: Sequence[str]) -> tuple[str, ...]:
    """The tools the model may call for the step: those of its capabilities, first seen first."""
    by_name = {capability.name: capability for capability in definition.capabilities}
    names = [tool for name in capabilities if name in by_name for tool in by_name[name].tools]
    return tuple(dict.fromkeys(names))


def _untitled(schema: Any) -> Any:
    """``schema`` without the ``title`` annotations pydantic adds (a property named "title"
    stays: its value is a schema, not a string)."""
    if isinstance(schema, dict):
        return {
            key: _untitled(value)
            for key, value in schema.items()
            if not (key == "title" and isinstance(value, str))
        }
    if isinstance(schema, list):
        return [_untitled(value) for value in schema]
    return schema


def answer_schema(answer: type[Answer]) -> str:
    """The answer's JSON Schema, compact and without titles, as the prompt quotes it."""
    schema = _untitled(answer.model_json_schema(by_alias=True))
    return json.dumps(schema, ensure_ascii=False, separators=(",", ":"))


def step_document(step_input: StepInput) -> dict[str, Any]:
    """The step as the model reads it: only what the step was given, nothing from the clock."""
    step = step_input.step
    subtasks = set(step_input.subtask_ids)
    document: dict[str, Any] = {
        "goal": step_input.goal,
        "step": {
            "id": step_input.step_id,
            "title": step.title,
            "description": step.description,
            "requiredCapabilities": list(step.required_capabilities),
            "parameters": step.parameters,
        },
        "initialContext": step_input.initial_context,
        "sharedState": step_input.shared_state,
        "dependencies": {k: v for k, v in step_input.dependencies.items() if k not in subtasks},
    }
    if step_input.input_provided:
        document["operatorInput"] = step_input.operator_input
    if step_input.subtask_ids:
        document["subtaskOutputs"] = step_input.subtask_outputs
    return document


def role_messages(
    definition: AgentDefinition,
    role: Role,
    step_input: StepInput,
    capabilities: Sequence[str],
    extra: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The role prompt: the system message and the step as a JSON user message."""
    described = {capability.name: capability.description for capability in definition.capabilities}
    asked = [
        f"- {name}"
        + (f": {described[name]}" if described.get(name) else "")
        + (f". {role.hints[name]}" if name in role.hints else "")
        for name in capabilities
    ]
    parts = [
        f"You are {definition.name}, an agent of type {definition.type!r} in a multi-agent "
        f"orchestration system. {definition.description}",
        role.task,
        "This step asks for:\n" + "\n".join(asked),
        _INPUT_GUIDE,
        *extra,
        "Answer with one JSON object and nothing else, valid against this JSON Schema "
        f"(camelCase keys):\n{answer_schema(role.answer)}",
    ]
    user = json.dumps(step_document(step_input), ensure_ascii=False, default=str)
    return [
        {"role": "system", "content": "\n\n".join(part for part in parts if part)},
        {"role": "user", "content": user},
    ]


def parse_answer(
    content: str | None, answer: type[AnswerT], context: Mapping[str, Any] | None = None
) -> tuple[AnswerT | None, list[str]]:
    """The validated answer in ``content`` (bare JSON or in a ```json fence), or the reasons it
    is not one, each naming where it is wrong."""
    if content is None or not content.strip():
        return None, ["the reply held no text; answer with one JSON object"]
    text = content.strip()
    fenced = _WHOLE_FENCE.match(text) or _ANY_FENCE.search(text)
    candidate = fenced.group("body") if fenced else text
    try:
        document = json.loads(candidate)
    except (ValueError, RecursionError) as exc:
        return None, [f"the reply is not one JSON object ({exc}); send only the JSON object"]
    if not isinstance(document, dict):
        return None, [f"the reply must be a JSON object, not {type(document).__name__}"]
    try:
        return answer.model_validate(document, context=dict(context or {})), []
    except ValidationError as exc:
        return None, [
            f"{'.'.join(str(part) for part in error['loc']) or '(the object)'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        ]


def repair_request(errors: Sequence[str], answer: type[Answer]) -> dict[str, str]:
    """The user message asking, once, for a corrected answer."""
    listed = "\n".join(f"- {error}" for error in errors[:MAX_ERRORS_SENT])
    more = len(errors) - MAX_ERRORS_SENT
    if more > 0:
        listed += f"\n- … and {more} more"
    return {
        "role": "user",
        "content": f"That answer is not valid:\n{listed}\nAnswer again with the whole corrected "
        "answer as one JSON object and nothing else, valid against this JSON Schema:\n"
        f"{answer_schema(answer)}",
    }


def _conversation(messages: Sequence[dict[str, Any]], outcome: ChatOutcome) -> list[dict[str, Any]]:
    """The chat so far, ending with the model's answer as text: the outcome's conversation when
    it recorded one, its last message without tool calls no tool will answer."""
    recorded = [dict(message) for message in outcome.messages]
    if not recorded or recorded[-1].get("role") != "assistant":
        recorded = [*messages, {}]
    recorded[-1] = {"role": "assistant", "content": outcome.content or ""}
    return recorded


def ask_model(
    step_input: StepInput,
    llm: StepModel,
    messages: list[dict[str, Any]],
    answer: type[AnswerT],
    *,
    tools: Sequence[str] = (),
    context: Mapping[str, Any] | None = None,
) -> AnswerT:
    """The model's validated answer to ``messages``: one chat, and one repair chat when the
    first answer is not valid (``context`` goes to the answer's validators).

    Raises:
        PermanentStepError: the repaired answer is not valid either (its errors and the start
            of the reply in ``details``). The model's own errors pass through.
    """
    outcome = llm.chat(messages, tools=tools, response_format=RESPONSE_FORMAT)
    parsed, errors = parse_answer(outcome.content, answer, context)
    if parsed is not None:
        return parsed
    if step_input.logger is not None:
        step_input.logger.warn(
            "model answer invalid; asking once for a corrected one",
            errors=errors[:MAX_ERRORS_SENT],
            replyStart=(outcome.content or "")[:REPLY_START_CHARS],
        )
    retry = [*_conversation(messages, outcome), repair_request(errors, answer)]
    outcome = llm.chat(retry, tools=tools, response_format=RESPONSE_FORMAT)
    parsed, errors = parse_answer(outcome.content, answer, context)
    if parsed is not None:
        return parsed
    raise PermanentStepError(
        f"model {llm.model!r} gave no valid {answer.__name__} for step {step_input.step_id!r}, "
        f"even after one repair round: {'; '.join(errors[:3])}. Use a model that follows JSON "
        "instructions, or unset the model to run this agent offline.",
        details={
            "stepId": step_input.step_id,
            "agentId": step_input.agent_id,
            "model": llm.model,
            "errors": errors[:MAX_ERRORS_SENT],
            "replyStart": (outcome.content or "")[:REPLY_START_CHARS],
        },
    )


def modelled_output(
    definition: AgentDefinition, step_input: StepInput, llm: StepModel, answer: Answer
) -> dict[str, Any]:
    """The common fields of a modelled step's output, then the answer's own fields (those the
    model left null omitted)."""
    fields = answer.model_dump(mode="json", by_alias=True, exclude_none=True)
    output: dict[str, Any] = {
        "mode": "llm",
        "agentId": definition.id,
        "stepId": step_input.step_id,
        "summary": fields.pop("summary"),
        "inputsUsed": list(step_input.dependencies),
        "model": llm.model,
    }
    if step_input.subtask_ids:
        output["subtasksUsed"] = list(step_input.subtask_outputs)
    output.update(fields)
    return output


class ModelledAgent(OfflineAgent):
    """A built-in agent that does its step with the model when one is configured, and its
    offline work (``OfflineAgent``) when not."""

    role: ClassVar[Role]

    def run(self, step_input: StepInput) -> StepResult:
        if step_input.llm is None:
            return super().run(step_input)
        return self.run_with_model(step_input, step_input.llm)

    def run_with_model(self, step_input: StepInput, llm: StepModel) -> StepResult:
        """Ask the model for the role's answer; it is the step's output."""
        capabilities = step_capabilities(self.definition, step_input, self.default_capability)
        messages = role_messages(self.definition, self.role, step_input, capabilities)
        tools = step_tools(self.definition, capabilities)
        answer = ask_model(step_input, llm, messages, self.role.answer, tools=tools)
        return StepResult(output=modelled_output(self.definition, step_input, llm, answer))
