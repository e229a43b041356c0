"""The built-in researcher. With a model (see ``modelled``): findings with their sources and
confidence, open questions, and the drafted text when the step asks for a document. Offline (see
``offline``): research prepared (questions, search queries it does not run), skeletons of
documents to write, digests of its inputs, and checks of drafts to review."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from orchestrator.core.fleet import RESEARCHER
from orchestrator.core.steps import StepInput
from workers.agents.builtin.modelled import Answer, ModelledAgent, Part, Role
from workers.agents.builtin.offline import (
    MAX_LISTED,
    SUBJECT_CHARS,
    Work,
    clip,
    count,
    input_digest,
    is_offline,
    preview,
    previews,
    step_subject,
)
from workers.agents.builtin.reviewer import review_checks

MAX_FINDINGS = 50
MAX_QUESTIONS = 20


def _research_questions(step_input: StepInput, subject: str) -> list[str]:
    questions = [
        f"What is {subject}, and which problem does it solve here?",
        f"Which approaches or options exist for {subject}?",
        "What are their trade-offs in security, cost, complexity and maturity?",
        f"Which option best fits the goal: {clip(step_input.goal, SUBJECT_CHARS)}?",
    ]
    parameters = step_input.step.parameters
    if parameters.get("item") and parameters.get("subject"):  # one of several compared things
        compared = clip(str(parameters["subject"]), SUBJECT_CHARS)
        questions.append(f"How does {subject} differ from the alternatives in {compared}?")
    context = previews(step_input.initial_context)
    questions += [
        f"What does the given {key} ({value}) change for {subject}?"
        for key, value in context.items()
    ]
    return questions


def _research_plan(step_input: StepInput) -> Work:
    subject = step_subject(step_input)
    questions = _research_questions(step_input, subject)
    terms = [preview(v) for v in step_input.initial_context.values() if isinstance(v, str)]
    queries = [subject, f"{subject} best practices", f"{subject} trade-offs"]
    queries += [f"{subject} {term}" for term in terms[:3]]
    fields = {
        "questions": questions,
        "searchQueries": {"executed": False, "queries": queries},
        "contextDigest": input_digest(step_input),
    }
    listed = count(len(queries), "search query", "search queries")
    asked = count(len(questions), "question")
    return Work(f"listed {asked} and {listed} on {subject}, none of them run", fields)


def _sections_from(step_id: str, value: Any) -> list[dict[str, Any]]:
    """Skeleton sections a dependency output suggests: one per research question, else one."""
    questions = value.get("questions") if isinstance(value, Mapping) else None
    if isinstance(questions, list) and questions:
        return [
            {
                "heading": clip(str(q), SUBJECT_CHARS),
                "toCover": "the answer, from real research",
                "source": step_id,
            }
            for q in questions[:MAX_LISTED]
        ]
    state = "offline: no real findings yet" if is_offline(value) else preview(value)
    return [{"heading": f"Findings from {step_id}", "toCover": state, "source": step_id}]


def _draft_skeleton(step_input: StepInput) -> Work:
    subject = step_subject(step_input)
    kind = str(step_input.step.parameters.get("documentKind") or "text")
    sections = [{"heading": "Introduction", "toCover": f"what {subject} is and why it matters"}]
    for step_id, value in step_input.dependencies.items():
        sections += _sections_from(step_id, value)
    sections.append({"heading": "Conclusion", "toCover": "the answer to the goal, in brief"})
    skeleton = {
        "label": "skeleton only: headings and what each must cover; no prose was written",
        "title": f"{kind[:1].upper()}{kind[1:]} about {subject}",
        "sections": sections,
        "constraints": previews(step_input.initial_context),
    }
    summary = f"built a skeleton of {count(len(sections), 'section')} for the {kind}"
    return Work(summary, {"draftSkeleton": skeleton})


def _synthesis_digest(step_input: StepInput) -> Work:
    digest = input_digest(step_input)
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
    digested = count(len(described), "input")
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


def _analyse_document(step_input: StepInput) -> Work:
    """Reviewing a draft offline: the input checks plus the measurable shape of each draft."""
    review = review_checks(step_input)
    shapes = [_document_shape(i, v) for i, v in step_input.dependencies.items()]
    return Work(review.summary, {**review.fields, "documents": shapes})


class Finding(Part):
    claim: str = Field(min_length=1, max_length=2000, description="One finding, stated plainly.")
    source: str | None = Field(
        default=None,
        max_length=500,
        description="Where it comes from (an input's step id, a document, a URL you are sure "
        "of); null when it is your own knowledge.",
    )
    confidence: Literal["high", "medium", "low"]


class ResearchAnswer(Answer):
    findings: list[Finding] = Field(default_factory=list, max_length=MAX_FINDINGS)
    open_questions: list[str] = Field(
        default_factory=list,
        max_length=MAX_QUESTIONS,
        description="What could not be answered from your knowledge and the inputs.",
    )
    document: str | None = Field(
        default=None,
        max_length=100_000,
        description="The drafted text (Markdown) when the step asks for a document, else null.",
    )


RESEARCH_ROLE = Role(
    task="You research and write. A good answer states the findings the step asks for, each "
    "with its source and an honest confidence, lists the questions that stay open, and drafts "
    "the document when the step asks for one. Distinguish what the inputs say from what you "
    "know, and never invent a source.",
    answer=ResearchAnswer,
    hints={
        "web_research": "Unless a tool is offered you cannot browse: answer from your own "
        "knowledge and the inputs, give a source only when you are sure of it, and put what "
        "needs looking up in openQuestions",
        "document_analysis": "Report what the documents in the inputs say and where they fall "
        "short, as findings whose source is the step id they came from",
        "data_synthesis": "Combine the dependencies' outputs into findings, naming the step "
        "ids each one rests on as its source, and note where they disagree",
        "document_creation": "Write the document in the document field, from the findings in "
        "the inputs; list as open questions the claims that still need a source",
    },
)


class ResearcherAgent(ModelledAgent):
    """With a model: findings, open questions and drafted documents. Offline: research
    prepared (questions, unexecuted queries), draft skeletons and input digests."""

    definition = RESEARCHER
    role = RESEARCH_ROLE
    handlers = {
        "web_research": _research_plan,
        "document_creation": _draft_skeleton,
        "data_synthesis": _synthesis_digest,
        "document_analysis": _analyse_document,
    }
    default_capability = "data_synthesis"
