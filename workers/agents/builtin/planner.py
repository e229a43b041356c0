"""The built-in planner. With a model (see ``modelled``): an ordered plan of steps, each for one
capability, and, when the fleet's capabilities are known and the model asks for it, that plan
returned as a sub-plan the fleet runs under the step (dynamic decomposition); the step then runs
once more and sums up its subtasks' outputs. Offline (see ``offline``): a checklist of sub-steps
built from the step's text, its context and its inputs."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import Annotated, Any, Self

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator

from orchestrator.core.chat import StepModel
from orchestrator.core.fleet import PLANNER
from orchestrator.core.models import CAPABILITY_NAME_PATTERN, PlanStep
from orchestrator.core.steps import StepInput, StepResult
from workers.agents.builtin.modelled import (
    Answer,
    ModelledAgent,
    Part,
    Role,
    ask_model,
    modelled_output,
    role_messages,
    step_capabilities,
    step_tools,
)
from workers.agents.builtin.offline import (
    MAX_LISTED,
    Work,
    clip,
    count,
    is_offline,
    previews,
    step_subject,
)

PLANNING_CHECKLISTS: dict[str, tuple[str, ...]] = {
    "task_decomposition": (
        "State the expected result for {subject} in one sentence",
        "List the deliverables and how each one will be accepted",
        "Split the work into steps one agent can finish",
        "Record which step needs which result",
        "Mark the steps that can run in parallel",
    ),
    "dependency_analysis": (
        "List every piece of work {subject} involves",
        "Name what each piece needs to start",
        "Find the longest chain of dependent work",
        "Flag dependencies on people or systems",
    ),
    "workflow_design": (
        "Name the audience and purpose for {subject}",
        "Choose the sections and their order",
        "Mark each claim that needs a source before drafting",
        "Set the length and tone",
        "Decide how the draft will be reviewed",
    ),
}


def _description_points(description: str) -> list[str]:
    """The items a step description lists after a colon ("...: components, interfaces, ...")."""
    _, colon, listed = description.partition(":")
    points = re.split(r",|;|\band\b", listed.split(".")[0]) if colon else []
    return [clip(point.strip()) for point in points if point.strip()][:MAX_LISTED]


def _plan_checklist(step_input: StepInput, capability: str) -> Work:
    subject = step_subject(step_input)
    checklist = [item.format(subject=subject) for item in PLANNING_CHECKLISTS[capability]]
    checklist += [f"Cover {point}" for point in _description_points(step_input.step.description)]
    context = previews(step_input.initial_context)
    checklist += [f"Respect the given {key}: {value}" for key, value in context.items()]
    for step_id, value in step_input.dependencies.items():
        state = "offline, so it holds no real findings yet" if is_offline(value) else "provided"
        checklist.append(f"Build on the output of {step_id} ({state})")
    fields = {"checklist": checklist, "builtOn": list(step_input.dependencies)}
    return Work(f"drafted a checklist of {count(len(checklist), 'item')} for {subject}", fields)


MAX_PLAN_STEPS = 20  # in one answer, so in one sub-plan (MEOWSTIK_MAX_SUBPLAN_STEPS is 50)
SUBTASK_ID = "part-{number}"  # scheduled as "<parent id>.part-<number>" (core/decomposition.py)
FLEET = "fleet"  # the validation context's key: the capabilities a step may name
Capability = Annotated[str, StringConstraints(pattern=CAPABILITY_NAME_PATTERN)]


class PlanItem(Part):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(
        default="", max_length=4000, description="What the step must do and produce."
    )
    capability: Capability = Field(description="The one capability the step needs.")
    depends_on: list[int] = Field(
        default_factory=list,
        max_length=MAX_PLAN_STEPS,
        description="Numbers (1 for the first step) of earlier steps whose output it needs.",
    )

    @field_validator("capability")
    @classmethod
    def _in_fleet(cls, capability: str, info: ValidationInfo) -> str:
        fleet = (info.context or {}).get(FLEET)
        if fleet is not None and capability not in fleet:
            raise ValueError(
                f"capability {capability!r} is not one the fleet has; use one of {list(fleet)}"
            )
        return capability


class PlanAnswer(Answer):
    steps: list[PlanItem] = Field(default_factory=list, max_length=MAX_PLAN_STEPS)
    sub_plan: bool = Field(
        default=False,
        description="true to have the fleet run these steps as this step's subtasks.",
    )

    @model_validator(mode="after")
    def _dependencies_come_first(self) -> Self:
        for number, item in enumerate(self.steps, start=1):
            wrong = [d for d in item.depends_on if not 1 <= d < number]
            if wrong:
                raise ValueError(
                    f"step {number}'s dependsOn {wrong} must name earlier steps "
                    f"(numbers 1 to {number - 1})"
                )
        if self.sub_plan and not self.steps:
            raise ValueError("subPlan is true but steps is empty: give the steps to run")
        return self


PLAN_ROLE = Role(
    task="You plan. A good answer is an ordered list of concrete steps, each small enough for "
    "one agent with one capability, each saying what it must produce, with dependsOn naming "
    "the earlier steps whose output it needs (steps without one can run in parallel). It "
    "respects the constraints in the initial context, builds on the dependencies' outputs, and "
    "uses as few steps as the work needs. Plan the work; do not do it.",
    answer=PlanAnswer,
    hints={
        "dependency_analysis": "Make dependsOn the point of the answer: what must happen "
        "before what, and why, in each description",
        "workflow_design": "Design the order and shape of the work: name the deliverable of "
        "each step in its description",
    },
)


def fleet_of(step_input: StepInput) -> list[str] | None:
    """The active fleet's capability names, sorted, or None when the runtime does not say."""
    provider: Callable[[], Sequence[str]] | None = getattr(step_input, "fleet_capabilities", None)
    names = sorted(set(provider())) if provider is not None else []
    return names or None


def may_decompose(step_input: StepInput, fleet: list[str] | None) -> bool:
    """Whether this run may return a sub-plan: the fleet is known and the step never had
    subtasks (a parent running after its subtasks sums them up instead)."""
    return fleet is not None and step_input.decompositions == 0 and not step_input.subtask_ids


def plan_instructions(step_input: StepInput, fleet: list[str] | None) -> list[str]:
    """What the planner is told about the fleet and sub-plans for this run."""
    lines = []
    if fleet is not None:
        lines.append(
            f"The fleet's capabilities: {', '.join(fleet)}. Every step's capability must be "
            "one of these."
        )
    if step_input.subtask_ids:
        lines.append(
            "This step's subtasks have run: their outputs are in subtaskOutputs. Combine them "
            "into the step's final answer: the summary says what they achieved, and steps lists "
            "only what remains to do (empty when nothing does). subPlan must be false."
        )
    elif may_decompose(step_input, fleet):
        lines.append(
            "Set subPlan to true when the fleet should run your steps now, as this step's "
            "subtasks: you then run once more with their outputs (subtaskOutputs) to give the "
            "final answer. Use it for work that needs other capabilities, with at least two "
            "steps, never one that just repeats this step. Set it to false to answer with the "
            "plan alone."
        )
    else:
        lines.append("subPlan is not available for this step: leave it false.")
    return lines


def subtask_documents(steps: Sequence[PlanItem]) -> list[dict[str, Any]]:
    """The sub-plan as PlanStep documents: ``part-<n>`` in answer order, one capability each."""
    ids = [SUBTASK_ID.format(number=number) for number in range(1, len(steps) + 1)]
    return [
        PlanStep(
            id=step_id,
            title=item.title,
            description=item.description,
            required_capabilities=[item.capability],
            depends_on=[ids[number - 1] for number in dict.fromkeys(item.depends_on)],
        ).model_dump(mode="json", by_alias=True, exclude_none=True)
        for step_id, item in zip(ids, steps, strict=True)
    ]


class PlannerAgent(ModelledAgent):
    """With a model: a plan of steps, run as a sub-plan when the model asks and the fleet can.
    Offline: a checklist of sub-steps built from the step's text, context and inputs."""

    definition = PLANNER
    handlers = {cap: partial(_plan_checklist, capability=cap) for cap in PLANNING_CHECKLISTS}
    default_capability = "task_decomposition"
    role = PLAN_ROLE

    def run_with_model(self, step_input: StepInput, llm: StepModel) -> StepResult:
        """The model's plan; a sub-plan to run under this step when it asked for one and may."""
        fleet = fleet_of(step_input)
        capabilities = step_capabilities(self.definition, step_input, self.default_capability)
        messages = role_messages(
            self.definition,
            self.role,
            step_input,
            capabilities,
            plan_instructions(step_input, fleet),
        )
        answer = ask_model(
            step_input,
            llm,
            messages,
            PlanAnswer,
            tools=step_tools(self.definition, capabilities),
            context={FLEET: fleet},
        )
        decompose = answer.sub_plan and may_decompose(step_input, fleet)
        output = modelled_output(self.definition, step_input, llm, answer)
        output["subPlan"] = decompose
        if not decompose:
            return StepResult(output=output)
        return StepResult(output=output, subtasks=subtask_documents(answer.steps))
