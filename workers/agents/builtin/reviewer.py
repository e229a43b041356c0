"""The built-in reviewer. With a model (see ``modelled``): a verdict (approve, request_changes,
reject) and the issues behind it. Offline (see ``offline``): checks which inputs arrived and
whether they are offline, empty or error-like, and lists how to diagnose an error. Its offline
input checks are also how the researcher analyses a document offline."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from orchestrator.core.fleet import REVIEWER
from orchestrator.core.steps import StepInput
from workers.agents.builtin.modelled import Answer, ModelledAgent, Part, Role
from workers.agents.builtin.offline import Work, count, describe, preview

EVIDENCE_KEY = re.compile(r"error|exception|traceback|stack|log|symptom|repro", re.IGNORECASE)
DIAGNOSIS_STEPS = (
    "Reproduce the failure and write down the exact steps",
    "Capture the full error message and stack trace",
    "Find the last change that touched the failing code path",
    "Narrow the cause down until one change explains it",
)


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


def review_checks(step_input: StepInput) -> Work:
    """A description of every dependency output, the missing ones, and the verdict on them."""
    checks = [describe(i, v) for i, v in step_input.dependencies.items()]
    missing = [dep for dep in step_input.step.depends_on if dep not in step_input.dependencies]
    verdict = _verdict(checks, missing)
    fields = {"checks": checks, "missingInputs": missing, "verdict": verdict}
    return Work(f"checked {count(len(checks), 'input')}: {verdict}", fields)


def _diagnose(step_input: StepInput) -> Work:
    """What to do to find the cause, the evidence the context holds, and any input checks."""
    sources = {**step_input.initial_context, **step_input.shared_state}
    evidence = {str(k): preview(v) for k, v in sources.items() if EVIDENCE_KEY.search(str(k))}
    steps = list(DIAGNOSIS_STEPS)
    found = count(len(evidence), "evidence entry", "evidence entries")
    fields: dict[str, Any] = {"diagnosisSteps": steps, "evidenceProvided": evidence}
    if step_input.dependencies:
        fields.update(review_checks(step_input).fields)
    fields["verdict"] = "needs_real_execution"  # offline, no cause can be confirmed
    return Work(f"listed {len(steps)} diagnosis steps with {found} in the context", fields)


class Issue(Part):
    severity: Literal["critical", "major", "minor", "suggestion"]
    description: str = Field(
        min_length=1, max_length=2000, description="What is wrong, where, and how to fix it."
    )


class ReviewAnswer(Answer):
    verdict: Literal["approve", "request_changes", "reject"]
    issues: list[Issue] = Field(default_factory=list, max_length=100)


REVIEW_ROLE = Role(
    task="You review. A good answer judges only what the inputs hold, lists each issue with "
    "its severity, where it is and how to fix it, and ends in a verdict: approve when nothing "
    "critical or major is left, request_changes when it can be fixed, reject when it cannot "
    "serve the goal. Missing or empty inputs are issues; never approve what you were not shown.",
    answer=ReviewAnswer,
    hints={
        "error_diagnosis": "Find the most likely cause from the error evidence in the context, "
        "the shared state and the inputs; put each candidate cause and how to confirm it in "
        "issues, and request_changes until a cause is confirmed",
    },
)


class ReviewerAgent(ModelledAgent):
    """With a model: a verdict and the issues behind it. Offline: checks which inputs arrived
    and whether they are offline, empty or error-like."""

    definition = REVIEWER
    role = REVIEW_ROLE
    handlers = {"code_review": review_checks, "error_diagnosis": _diagnose}
    default_capability = "code_review"
