"""The rule-based planner's step tables (data): for each kind of goal, the steps it becomes,
with their agent type, capability, title and description patterns and dependencies."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepTemplate:
    """One step of a template. Titles and descriptions are ``str.format`` strings over
    ``subject``, ``item`` (the compared thing, else the subject) and ``kind`` (document kind).
    ``after`` names earlier template keys; ``per_item`` repeats the step for each compared item."""

    key: str
    agent_type: str
    capability: str
    title: str
    description: str
    after: tuple[str, ...] = ()
    per_item: bool = False


def _t(
    key: str,
    agent_type: str,
    capability: str,
    title: str,
    description: str,
    *after: str,
    per_item: bool = False,
) -> StepTemplate:
    return StepTemplate(key, agent_type, capability, title, description, after, per_item)


_IMPLEMENT = (
    _t(
        "implement",
        "coder",
        "code_generation",
        "Implement {subject}",
        "Write the code for {subject} following the design.",
        "design",
    ),
    _t(
        "tests",
        "coder",
        "testing",
        "Write tests for {subject}",
        "Write and run automated tests for {subject}: normal use, invalid input and failure paths.",
        "implement",
    ),
    _t(
        "review",
        "reviewer",
        "code_review",
        "Review the implementation of {subject}",
        "Review the code and tests for {subject} for defects, security and style.",
        "implement",
        "tests",
    ),
)
_REVIEW_DRAFT = _t(
    "review",
    "researcher",
    "document_analysis",
    "Review the draft {kind} about {subject}",
    "Review the draft for accuracy, structure, clarity and length; list what must change.",
    "draft",
)

TEMPLATES: dict[str, tuple[StepTemplate, ...]] = {
    "research_build": (
        _t(
            "research",
            "researcher",
            "web_research",
            "Research approaches to {subject}",
            "Find the established approaches to {subject} and their trade-offs, with sources.",
        ),
        _t(
            "design",
            "planner",
            "task_decomposition",
            "Design the implementation of {subject}",
            "Turn the research into a design for {subject}: components, interfaces, order of work.",
            "research",
        ),
        *_IMPLEMENT,
    ),
    "build": (
        _t(
            "design",
            "planner",
            "task_decomposition",
            "Design {subject}",
            "Break {subject} down into components and interfaces and decide the order of work.",
        ),
        *_IMPLEMENT,
    ),
    "research_write": (
        _t(
            "research",
            "researcher",
            "web_research",
            "Research {subject}",
            "Collect the facts about {subject} that the {kind} will rely on, with sources.",
        ),
        _t(
            "draft",
            "researcher",
            "document_creation",
            "Draft the {kind} about {subject}",
            "Draft the {kind} about {subject} from the research, for the audience in the context.",
            "research",
        ),
        _REVIEW_DRAFT,
    ),
    "write": (
        _t(
            "outline",
            "planner",
            "workflow_design",
            "Outline the {kind} about {subject}",
            "Outline the {kind} about {subject}: audience, purpose, sections and their order.",
        ),
        _t(
            "draft",
            "researcher",
            "document_creation",
            "Draft the {kind} about {subject}",
            "Draft the {kind} about {subject} following the outline.",
            "outline",
        ),
        _REVIEW_DRAFT,
    ),
    "research": (
        _t(
            "plan",
            "planner",
            "task_decomposition",
            "Plan the research into {subject}",
            "Decide the questions the research into {subject} must answer and where to look.",
        ),
        _t(
            "research",
            "researcher",
            "web_research",
            "Research {item}",
            "Research {item}: facts,"
            " options and trade-offs that answer the planned questions, with sources.",
            "plan",
            per_item=True,
        ),
        _t(
            "synthesise",
            "researcher",
            "data_synthesis",
            "Synthesise the findings on {subject}",
            "Combine the findings on {subject} into one comparison or summary with a conclusion.",
            "research",
        ),
    ),
    "test": (
        _t(
            "plan",
            "planner",
            "task_decomposition",
            "Plan the tests for {subject}",
            "List the"
            " behaviours of {subject} to test: normal use, edge cases, invalid input, failures.",
        ),
        _t(
            "tests",
            "coder",
            "testing",
            "Write tests for {subject}",
            "Write and run automated tests for {subject} following the plan.",
            "plan",
        ),
        _t(
            "review",
            "reviewer",
            "code_review",
            "Review the tests for {subject}",
            "Review the tests for {subject} for coverage of the plan, clarity and flakiness.",
            "tests",
        ),
    ),
    "debug": (
        _t(
            "diagnose",
            "reviewer",
            "error_diagnosis",
            "Diagnose {subject}",
            "Find the cause of"
            " {subject}: reproduce it, collect the error and trace it to the faulty code.",
        ),
        _t(
            "fix",
            "coder",
            "code_refactoring",
            "Apply a fix for {subject}",
            "Change the code to remove the diagnosed cause, keeping the change small.",
            "diagnose",
        ),
        _t(
            "test",
            "coder",
            "testing",
            "Test the fix for {subject}",
            "Add a test that fails"
            " without the fix and passes with it, then run the existing tests.",
            "fix",
        ),
    ),
    "general": (
        _t(
            "analyse",
            "planner",
            "task_decomposition",
            "Break down the goal: {subject}",
            "Work out"
            " what the goal asks for, what a good result looks like and the steps: {subject}.",
        ),
        _t(
            "carry_out",
            "researcher",
            "data_synthesis",
            "Carry out: {subject}",
            "Carry out the goal following the analysis: {subject}.",
            "analyse",
        ),
        _t(
            "review",
            "researcher",
            "document_analysis",
            "Review the outcome: {subject}",
            "Check the result against the goal and the analysis; list what is missing.",
            "carry_out",
        ),
    ),
}
