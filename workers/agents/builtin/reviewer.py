"""The built-in reviewer: checks which inputs arrived and whether they are offline, empty or
error-like, and lists how to diagnose an error (offline, see ``offline``). Its input checks are
also how the researcher analyses a document."""

from __future__ import annotations

import re
from typing import Any

from orchestrator.core.fleet import REVIEWER
from orchestrator.core.steps import StepInput
from workers.agents.builtin.offline import OfflineAgent, Work, count, describe, preview

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


class ReviewerAgent(OfflineAgent):
    """Checks which inputs arrived and whether they are offline, empty or error-like."""

    definition = REVIEWER
    handlers = {"code_review": review_checks, "error_diagnosis": _diagnose}
    default_capability = "code_review"
