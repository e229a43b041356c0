"""The built-in fleet: the four default agents, doing honest offline work.

No LLM is configured in this version, so these agents never pretend to research, write or code.
Each does the deterministic part of its job from the step's input alone: questions and queries
(marked not executed), checklists, outlines labelled as outlines, digests of its inputs, and
review checks with a verdict such as ``needs_real_execution``. Every output is a JSON-ready dict
with ``mode`` ("offline"), ``agentId``, ``stepId``, a one-sentence ``summary``, a ``note`` saying
why this is offline work, and ``inputsUsed`` (dependency ids read), plus each capability's fields.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from orchestrator.core.fleet import CODER, PLANNER, RESEARCHER, REVIEWER
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
MAX_IDENTIFIER_WORDS = 4
ERROR_KEYS = frozenset({"error", "errors", "exception", "traceback"})
ERROR_STATUSES = frozenset({"error", "failed", "failure"})
EVIDENCE_KEY = re.compile(r"error|exception|traceback|stack|log|symptom|repro", re.IGNORECASE)
FIX_STEPS = (
    "Write a test that fails because of it",
    "Make the smallest change that removes the diagnosed cause",
    "Run the new test and the whole existing suite",
)
DIAGNOSIS_STEPS = (
    "Reproduce the failure and write down the exact steps",
    "Capture the full error message and stack trace",
    "Find the last change that touched the failing code path",
    "Narrow the cause down until one change explains it",
)
STOPWORDS = frozenset(
    "a an the of for to and or in on with about into from by is are be this that how what".split()
)


@dataclass(frozen=True)
class Work:
    """One capability's share of a step's output: a summary clause and the fields it adds."""

    summary: str
    fields: dict[str, Any]


def _clip(text: str, limit: int = PREVIEW_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _count(number: int, noun: str, plural: str = "") -> str:
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def _preview(value: Any) -> str:
    """A short, JSON-safe rendering of any input value (strings shown without quotes)."""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    return _clip(" ".join(value.split()))


def _is_offline(value: Any) -> bool:
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


def _describe(step_id: str, value: Any) -> dict[str, Any]:
    """What can be said about one dependency output without judging its content."""
    keys = sorted(str(key) for key in value)[:MAX_LISTED] if isinstance(value, Mapping) else []
    shown = value.get("summary", value) if _is_offline(value) else value
    return {
        "stepId": step_id,
        "offline": _is_offline(value),
        "empty": _is_empty(value),
        "errorLike": _looks_like_error(value),
        "keys": keys,
        "preview": _preview(shown),
    }


def _previews(mapping: Mapping[str, Any]) -> dict[str, str]:
    return {str(key): _preview(value) for key, value in list(mapping.items())[:MAX_LISTED]}


def _digest(step_input: StepInput) -> dict[str, Any]:
    """Keys and short previews of everything the step was given."""
    return {
        "dependencies": [_describe(i, v) for i, v in step_input.dependencies.items()],
        "initialContext": _previews(step_input.initial_context),
        "sharedStateKeys": sorted(str(key) for key in step_input.shared_state)[:MAX_LISTED],
    }


def _subject(step_input: StepInput) -> str:
    """What the step is about: the rule planner's ``item`` or ``subject``, else the title's."""
    parameters = step_input.step.parameters
    given = [parameters.get(name) for name in ("item", "subject")]
    text = next((g for g in given if isinstance(g, str) and g.strip()), None)
    return _clip(text or read_goal(step_input.step.title or step_input.goal).subject, SUBJECT_CHARS)


def _identifier(text: str) -> str:
    """A snake_case Python name from the first significant words of ``text``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    words = [word for word in re.findall(r"[a-z0-9]+", ascii_text) if word not in STOPWORDS]
    name = "_".join(words[:MAX_IDENTIFIER_WORDS]) or "task"
    return f"task_{name}" if name[0].isdigit() else name


def _description_points(description: str) -> list[str]:
    """The items a step description lists after a colon ("...: components, interfaces, ...")."""
    _, colon, listed = description.partition(":")
    points = re.split(r",|;|\band\b", listed.split(".")[0]) if colon else []
    return [_clip(point.strip()) for point in points if point.strip()][:MAX_LISTED]


# Planner: checklists
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


def _plan_checklist(step_input: StepInput, capability: str) -> Work:
    subject = _subject(step_input)
    checklist = [item.format(subject=subject) for item in PLANNING_CHECKLISTS[capability]]
    checklist += [f"Cover {point}" for point in _description_points(step_input.step.description)]
    context = _previews(step_input.initial_context)
    checklist += [f"Respect the given {key}: {value}" for key, value in context.items()]
    for step_id, value in step_input.dependencies.items():
        state = "offline, so it holds no real findings yet" if _is_offline(value) else "provided"
        checklist.append(f"Build on the output of {step_id} ({state})")
    fields = {"checklist": checklist, "builtOn": list(step_input.dependencies)}
    return Work(f"drafted a checklist of {_count(len(checklist), 'item')} for {subject}", fields)


# Researcher: questions, skeletons, digests
def _research_questions(step_input: StepInput, subject: str) -> list[str]:
    questions = [
        f"What is {subject}, and which problem does it solve here?",
        f"Which approaches or options exist for {subject}?",
        "What are their trade-offs in security, cost, complexity and maturity?",
        f"Which option best fits the goal: {_clip(step_input.goal, SUBJECT_CHARS)}?",
    ]
    parameters = step_input.step.parameters
    if parameters.get("item") and parameters.get("subject"):  # one of several compared things
        compared = _clip(str(parameters["subject"]), SUBJECT_CHARS)
        questions.append(f"How does {subject} differ from the alternatives in {compared}?")
    context = _previews(step_input.initial_context)
    questions += [
        f"What does the given {key} ({value}) change for {subject}?"
        for key, value in context.items()
    ]
    return questions


def _research_plan(step_input: StepInput) -> Work:
    subject = _subject(step_input)
    questions = _research_questions(step_input, subject)
    terms = [_preview(v) for v in step_input.initial_context.values() if isinstance(v, str)]
    queries = [subject, f"{subject} best practices", f"{subject} trade-offs"]
    queries += [f"{subject} {term}" for term in terms[:3]]
    fields = {
        "questions": questions,
        "searchQueries": {"executed": False, "queries": queries},
        "contextDigest": _digest(step_input),
    }
    listed = _count(len(queries), "search query", "search queries")
    asked = _count(len(questions), "question")
    return Work(f"listed {asked} and {listed} on {subject}, none of them run", fields)


def _sections_from(step_id: str, value: Any) -> list[dict[str, Any]]:
    """Skeleton sections a dependency output suggests: one per research question, else one."""
    questions = value.get("questions") if isinstance(value, Mapping) else None
    if isinstance(questions, list) and questions:
        return [
            {
                "heading": _clip(str(q), SUBJECT_CHARS),
                "toCover": "the answer, from real research",
                "source": step_id,
            }
            for q in questions[:MAX_LISTED]
        ]
    state = "offline: no real findings yet" if _is_offline(value) else _preview(value)
    return [{"heading": f"Findings from {step_id}", "toCover": state, "source": step_id}]


def _draft_skeleton(step_input: StepInput) -> Work:
    subject = _subject(step_input)
    kind = str(step_input.step.parameters.get("documentKind") or "text")
    sections = [{"heading": "Introduction", "toCover": f"what {subject} is and why it matters"}]
    for step_id, value in step_input.dependencies.items():
        sections += _sections_from(step_id, value)
    sections.append({"heading": "Conclusion", "toCover": "the answer to the goal, in brief"})
    skeleton = {
        "label": "skeleton only: headings and what each must cover; no prose was written",
        "title": f"{kind[:1].upper()}{kind[1:]} about {subject}",
        "sections": sections,
        "constraints": _previews(step_input.initial_context),
    }
    summary = f"built a skeleton of {_count(len(sections), 'section')} for the {kind}"
    return Work(summary, {"draftSkeleton": skeleton})


def _synthesis_digest(step_input: StepInput) -> Work:
    digest = _digest(step_input)
    described = digest["dependencies"]
    offline = [entry["stepId"] for entry in described if entry["offline"]]
    real = [entry for entry in described if not entry["offline"]]
    fields = {
        "digest": digest,
        "inputCount": len(described),
        "offlineInputs": offline,
        "realInputs": [entry["stepId"] for entry in real],
        "combinedKeys": sorted({key for entry in real for key in entry["keys"]}),
    }
    digested = _count(len(described), "input")
    return Work(f"digested {digested}, {len(offline)} from offline work", fields)


def _document_shape(step_id: str, value: Any) -> dict[str, Any]:
    """Measurable facts about one draft: prose length, or a skeleton's section count."""
    if isinstance(value, str):
        return {"stepId": step_id, "kind": "text", "words": len(value.split()), "hasProse": True}
    skeleton = value.get("draftSkeleton") if isinstance(value, Mapping) else None
    if isinstance(skeleton, Mapping):
        sections = skeleton.get("sections", [])
        return {"stepId": step_id, "kind": "skeleton", "sections": len(sections), "hasProse": False}
    return {"stepId": step_id, "kind": "other", "hasProse": False}


# Coder: outlines and test plans
def _code_outline(step_input: StepInput) -> Work:
    subject = _subject(step_input)
    name = _identifier(subject)
    functions = [
        {"name": f"validate_{name}_input", "purpose": "reject malformed input before any work"},
        {"name": f"run_{name}", "purpose": f"carry out {subject} for valid input"},
        {"name": f"report_{name}_failure", "purpose": "turn failures into clear, typed errors"},
    ]
    outline = {
        "label": "outline only: proposed names and responsibilities, not working code",
        "module": f"{name}.py",
        "functions": functions,
        "designInputs": list(step_input.dependencies),
        "constraints": _previews(step_input.initial_context),
    }
    return Work(f"outlined a module for {subject}", {"outline": outline})


def _fix_plan(step_input: StepInput) -> Work:
    sources = ", ".join(step_input.dependencies) or "the goal"
    plan = [f"Reproduce the problem described in {sources}", *FIX_STEPS]
    return Work(f"listed {len(plan)} fix steps for {_subject(step_input)}", {"fixPlan": plan})


def _cases_from(step_id: str, value: Any, name: str) -> list[dict[str, str]]:
    """Test cases a dependency output calls for: its outline's functions, or its fix."""
    if not isinstance(value, Mapping):
        return []
    if "fixPlan" in value:
        return [{"name": f"test_{name}_stays_fixed", "checks": f"the problem {step_id} fixed"}]
    outline = value.get("outline")
    functions = outline.get("functions", []) if isinstance(outline, Mapping) else []
    return [
        {"name": f"test_{f['name']}", "checks": f"{step_id}'s outline: {f['purpose']}"}
        for f in functions
        if isinstance(f, Mapping) and "name" in f and "purpose" in f
    ]


def _test_plan(step_input: StepInput) -> Work:
    name = _identifier(_subject(step_input))
    cases = [
        case
        for step_id, value in step_input.dependencies.items()
        for case in _cases_from(step_id, value, name)
    ]
    cases += [
        {"name": f"test_{name}_accepts_valid_input", "checks": "the normal case works"},
        {"name": f"test_{name}_rejects_invalid_input", "checks": "bad input gets a clear error"},
        {"name": f"test_{name}_handles_empty_input", "checks": "empty input is handled"},
        {"name": f"test_{name}_reports_failures", "checks": "failures are reported, not hidden"},
    ]
    fields = {"testPlan": {"label": "test plan only: no tests were written or run", "cases": cases}}
    return Work(f"listed {_count(len(cases), 'test case')} to write", fields)


# Reviewer: input checks and verdicts
def _verdict(checks: list[dict[str, Any]], missing: list[str]) -> str:
    if missing:
        return "missing_inputs"
    if not checks:
        return "nothing_to_review"
    if any(check["empty"] or check["errorLike"] for check in checks):
        return "inputs_look_wrong"
    if any(check["offline"] for check in checks):
        return "needs_real_execution"
    return "needs_human_review"  # an offline reviewer cannot judge real work, only its presence


def _review_checks(step_input: StepInput) -> Work:
    checks = [_describe(i, v) for i, v in step_input.dependencies.items()]
    missing = [dep for dep in step_input.step.depends_on if dep not in step_input.dependencies]
    verdict = _verdict(checks, missing)
    fields = {"checks": checks, "missingInputs": missing, "verdict": verdict}
    return Work(f"checked {_count(len(checks), 'input')}: {verdict}", fields)


def _analyse_document(step_input: StepInput) -> Work:
    """Reviewing a draft offline: the input checks plus the measurable shape of each draft."""
    review = _review_checks(step_input)
    shapes = [_document_shape(i, v) for i, v in step_input.dependencies.items()]
    return Work(review.summary, {**review.fields, "documents": shapes})


def _diagnose(step_input: StepInput) -> Work:
    """What to do to find the cause, the evidence the context holds, and any input checks."""
    sources = {**step_input.initial_context, **step_input.shared_state}
    evidence = {str(k): _preview(v) for k, v in sources.items() if EVIDENCE_KEY.search(str(k))}
    steps = list(DIAGNOSIS_STEPS)
    found = _count(len(evidence), "evidence entry", "evidence entries")
    fields: dict[str, Any] = {"diagnosisSteps": steps, "evidenceProvided": evidence}
    if step_input.dependencies:
        fields.update(_review_checks(step_input).fields)
    fields["verdict"] = "needs_real_execution"  # offline, no cause can be confirmed
    return Work(f"listed {len(steps)} diagnosis steps with {found} in the context", fields)


# Agents: one handler per capability
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


class PlannerAgent(OfflineAgent):
    """Turns a step into a checklist of sub-steps built from its text, context and inputs."""

    definition = PLANNER
    handlers = {cap: partial(_plan_checklist, capability=cap) for cap in PLANNING_CHECKLISTS}
    default_capability = "task_decomposition"


class ResearcherAgent(OfflineAgent):
    """Prepares research (questions, unexecuted queries), draft skeletons and input digests."""

    definition = RESEARCHER
    handlers = {
        "web_research": _research_plan,
        "document_creation": _draft_skeleton,
        "data_synthesis": _synthesis_digest,
        "document_analysis": _analyse_document,
    }
    default_capability = "data_synthesis"


class CoderAgent(OfflineAgent):
    """Proposes module outlines, fix plans and test cases; never code presented as working."""

    definition = CODER
    handlers = {
        "code_generation": _code_outline,
        "code_refactoring": _fix_plan,
        "testing": _test_plan,
    }
    default_capability = "code_generation"


class ReviewerAgent(OfflineAgent):
    """Checks which inputs arrived and whether they are offline, empty or error-like."""

    definition = REVIEWER
    handlers = {"code_review": _review_checks, "error_diagnosis": _diagnose}
    default_capability = "code_review"


BUILTIN_AGENTS: tuple[Agent, ...] = (
    PlannerAgent(),
    ResearcherAgent(),
    CoderAgent(),
    ReviewerAgent(),
)
