"""The built-in coder. With a model (see ``modelled``): the files it wrote (path, language,
content) and notes saying what was not run or tested. Offline (see ``offline``): module outlines,
fix plans and test cases, never code presented as working."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from pydantic import ConfigDict, Field, field_validator

from orchestrator.core.fleet import CODER
from orchestrator.core.steps import StepInput
from workers.agents.builtin.modelled import Answer, ModelledAgent, Part, Role
from workers.agents.builtin.offline import Work, count, previews, step_subject

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


MAX_FILES = 50
MAX_FILE_CHARS = 200_000


class CodeFile(Part):
    model_config = ConfigDict(**{**Part.model_config, "str_strip_whitespace": False})

    path: str = Field(
        min_length=1, max_length=300, description="Relative POSIX path, e.g. src/auth/login.py."
    )
    language: str = Field(min_length=1, max_length=40, description="e.g. python, typescript.")
    content: str = Field(max_length=MAX_FILE_CHARS, description="The whole file.")

    @field_validator("path")
    @classmethod
    def _relative_path(cls, path: str) -> str:
        path = path.strip()
        parts = PurePosixPath(path).parts
        if path.startswith(("/", "~")) or "\\" in path or ".." in parts or ":" in path:
            raise ValueError(
                f"path {path!r} must be relative, with '/' separators and no '..' or drive"
            )
        return path


class CodeAnswer(Answer):
    files: list[CodeFile] = Field(default_factory=list, max_length=MAX_FILES)
    notes: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="What was not run or tested, assumptions made, what remains to do.",
    )


CODE_ROLE = Role(
    task="You write code. A good answer gives every file the step needs, complete (no "
    "placeholders), in the language and framework the context names, and notes what you "
    "assumed and what was not run or tested: you cannot run code unless a tool is offered.",
    answer=CodeAnswer,
    hints={
        "code_refactoring": "Return the changed files whole, and say in notes what changed and why",
        "testing": "Return the test files; say in notes that they were not run unless a tool "
        "ran them",
    },
)


class CoderAgent(ModelledAgent):
    """With a model: the files it wrote, and what was not run. Offline: module outlines, fix
    plans and test cases; never code presented as working."""

    definition = CODER
    role = CODE_ROLE
    handlers = {
        "code_generation": _code_outline,
        "code_refactoring": _fix_plan,
        "testing": _test_plan,
    }
    default_capability = "code_generation"
