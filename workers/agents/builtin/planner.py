"""The built-in planner: turns a step into a checklist of sub-steps built from its text, its
context and its inputs (offline, see ``offline``)."""

from __future__ import annotations

import re
from functools import partial

from orchestrator.core.fleet import PLANNER
from orchestrator.core.steps import StepInput
from workers.agents.builtin.offline import (
    MAX_LISTED,
    OfflineAgent,
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


class PlannerAgent(OfflineAgent):
    """Turns a step into a checklist of sub-steps built from its text, context and inputs."""

    definition = PLANNER
    handlers = {cap: partial(_plan_checklist, capability=cap) for cap in PLANNING_CHECKLISTS}
    default_capability = "task_decomposition"
