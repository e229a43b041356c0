"""The built-in coder: proposes module outlines, fix plans and test cases, never code presented
as working (offline, see ``offline``)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from orchestrator.core.fleet import CODER
from orchestrator.core.steps import StepInput
from workers.agents.builtin.offline import OfflineAgent, Work, count, previews, step_subject

MAX_IDENTIFIER_WORDS = 4
STOPWORDS = frozenset(
    "a an the of for to and or in on with about into from by is are be this that how what".split()
)
FIX_STEPS = (
    "Write a test that fails because of it",
    "Make the smallest change that removes the diagnosed cause",
    "Run the new test and the whole existing suite",
)


def _identifier(text: str) -> str:
    """A snake_case Python name from the first significant words of ``text``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    words = [word for word in re.findall(r"[a-z0-9]+", ascii_text) if word not in STOPWORDS]
    name = "_".join(words[:MAX_IDENTIFIER_WORDS]) or "task"
    return f"task_{name}" if name[0].isdigit() else name


def _code_outline(step_input: StepInput) -> Work:
    subject = step_subject(step_input)
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
        "constraints": previews(step_input.initial_context),
    }
    return Work(f"outlined a module for {subject}", {"outline": outline})


def _fix_plan(step_input: StepInput) -> Work:
    sources = ", ".join(step_input.dependencies) or "the goal"
    plan = [f"Reproduce the problem described in {sources}", *FIX_STEPS]
    return Work(f"listed {len(plan)} fix steps for {step_subject(step_input)}", {"fixPlan": plan})


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
    name = _identifier(step_subject(step_input))
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
    return Work(f"listed {count(len(cases), 'test case')} to write", fields)


class CoderAgent(OfflineAgent):
    """Proposes module outlines, fix plans and test cases; never code presented as working."""

    definition = CODER
    handlers = {
        "code_generation": _code_outline,
        "code_refactoring": _fix_plan,
        "testing": _test_plan,
    }
    default_capability = "code_generation"
