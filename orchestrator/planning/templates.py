"""Workflow templates: plans kept as YAML files and filled from a request's initialContext.

A template is a plan whose strings may hold ``{{name}}`` placeholders for its declared
parameters (plus ``goal``, the request's goal, and ``subject``, what the rule planner reads as the
goal's subject). A parameter's value comes from ``initialContext[name]``, else from a named group
of the ``match`` pattern that picked the template, else from its ``default``; a parameter with
none of these is missing (422). A string that is exactly one placeholder inside ``parameters``
keeps the value's JSON type; everywhere else values are rendered as text.

Built-in templates live in ``orchestrator/planning/templates/*.yaml``; folders named in
``MEOWSTIK_TEMPLATE_DIRS`` are read after them, so a user template replaces a built-in one of the
same name. Every template is checked when it is loaded (its patterns compile, every placeholder is
declared, and its plan with default values is a valid graph); a broken file is reported with its
path instead of being used.

Instantiating is pure. Loading reads files, once, at process start.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, StringConstraints, ValidationError

from orchestrator.core.errors import PlanError, TemplateError, TemplateParameterError
from orchestrator.core.graph import PlanGraph
from orchestrator.core.models import LongText, PlanStep, RequestModel, ShortText, TemplateName
from orchestrator.planning.rules import read_goal

BUILTIN_TEMPLATE_DIR = Path(__file__).with_name("templates")
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
BUILTIN_VALUES = ("goal", "subject")
MAX_TEMPLATE_FILE_BYTES = 256 * 1024
MAX_GROUP_CHARS = 120
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


class TemplateParameter(RequestModel):
    """A value a template needs. Without a ``default`` it must come from the request."""

    description: LongText = ""
    type: Literal["string", "integer", "number", "boolean", "array", "object"] | None = None
    default: Any = None

    @property
    def required(self) -> bool:
        return "default" not in self.model_fields_set


class WorkflowTemplate(RequestModel):
    """One template file. ``steps`` are PlanStep documents whose strings may hold placeholders."""

    name: TemplateName
    title: ShortText
    description: LongText = ""
    match: list[Annotated[str, StringConstraints(max_length=500)]] = Field(
        default_factory=list, max_length=20
    )
    parameters: dict[str, TemplateParameter] = Field(default_factory=dict)
    steps: list[dict[str, Any]] = Field(min_length=1)

    def summary(self, source: str) -> dict[str, Any]:
        """What GET /api/orchestrator/templates shows of it."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "match": self.match,
            "parameters": {
                name: {
                    "description": p.description,
                    "type": p.type,
                    "required": p.required,
                    **({} if p.required else {"default": p.default}),
                }
                for name, p in self.parameters.items()
            },
            "steps": self.steps,
            "source": source,
        }


@dataclass(frozen=True)
class TemplateMatch:
    """A template picked for a goal, and the parameter values its pattern captured."""

    template: WorkflowTemplate
    groups: dict[str, str] = field(default_factory=dict)


def _placeholders(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield from PLACEHOLDER.findall(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _placeholders(item)
    elif isinstance(value, list):
        for item in value:
            yield from _placeholders(item)


def _render_text(text: str, values: Mapping[str, Any]) -> str:
    def one(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    return PLACEHOLDER.sub(one, text)


def _fill(value: Any, values: Mapping[str, Any], *, keep_types: bool) -> Any:
    """Substitute placeholders. With ``keep_types`` (inside step parameters) a string that is
    exactly one placeholder becomes the value itself, list or number included."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value.strip())
        if keep_types and whole:
            return values[whole.group(1)]
        return _render_text(value, values)
    if isinstance(value, list):
        return [_fill(item, values, keep_types=keep_types) for item in value]
    if isinstance(value, dict):
        return {
            key: _fill(item, values, keep_types=keep_types or key == "parameters")
            for key, item in value.items()
        }
    return value


def _type_ok(value: Any, expected: str | None) -> bool:
    if expected is None:
        return True
    if isinstance(value, bool) and expected in ("integer", "number"):
        return False
    return isinstance(value, _JSON_TYPES[expected])


def parameter_values(
    template: WorkflowTemplate,
    goal: str,
    initial_context: Mapping[str, Any],
    groups: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The value of every placeholder: built-ins, then each parameter from initialContext, the
    goal's captured groups, or its default.

    Raises:
        TemplateParameterError: a required parameter has no value, or a value has the wrong type.
    """
    builtins = {"goal": goal, "subject": read_goal(goal).subject}
    values: dict[str, Any] = dict(builtins)
    missing: list[str] = []
    wrong: dict[str, str] = {}
    for name, parameter in template.parameters.items():
        if name in initial_context:
            value = initial_context[name]
        elif groups and groups.get(name):
            value = groups[name]
        elif not parameter.required:
            default = parameter.default
            value = _render_text(default, builtins) if isinstance(default, str) else default
        else:
            missing.append(name)
            continue
        if not _type_ok(value, parameter.type):
            wrong[name] = f"expected {parameter.type}, got {type(value).__name__}"
        values[name] = value
    if missing or wrong:
        raise TemplateParameterError(template.name, missing, wrong)
    return values


def instantiate(
    template: WorkflowTemplate,
    goal: str,
    initial_context: Mapping[str, Any],
    groups: Mapping[str, str] | None = None,
) -> list[PlanStep]:
    """The template's steps with every placeholder filled, as validated PlanSteps.

    Raises:
        TemplateParameterError: see ``parameter_values``.
        TemplateError: a filled-in value made a step invalid (a title too long, say).
    """
    values = parameter_values(template, goal, initial_context, groups)
    filled = _fill(template.steps, values, keep_types=False)
    try:
        return [PlanStep.model_validate(step) for step in filled]
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise TemplateError(
            template.name,
            f"with the given values, step field {where} is invalid: {first['msg']}",
        ) from exc


def _sample(name: str, expected: str | None) -> Any:
    """A stand-in value of the declared type, for checking a template at load time."""
    samples = {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}
    return samples.get(expected or "string", f"sample {name}")


def _check(template: WorkflowTemplate) -> None:
    """Load-time checks: patterns compile, placeholders are declared, defaults make a valid plan."""
    for pattern in template.match:
        try:
            re.compile(pattern)
        except re.error as exc:
            message = f"match pattern {pattern!r} is invalid: {exc}"
            raise TemplateError(template.name, message) from exc
    declared = set(template.parameters) | set(BUILTIN_VALUES)
    undeclared = sorted(set(_placeholders(template.steps)) - declared)
    if undeclared:
        raise TemplateError(
            template.name,
            f"placeholders {', '.join(undeclared)} are not declared under parameters; declare "
            "them or remove them",
        )
    parameters = template.parameters.items()
    sample = {name: _sample(name, p.type) for name, p in parameters if p.required}
    try:
        PlanGraph.build(instantiate(template, "sample goal", sample))
    except PlanError as exc:
        raise TemplateError(template.name, exc.message) from exc


@dataclass(frozen=True)
class TemplateLibrary:
    """The templates this process knows, by name, and the files that could not be used."""

    templates: dict[str, WorkflowTemplate]
    sources: dict[str, str]
    problems: list[dict[str, str]]

    def get(self, name: str) -> WorkflowTemplate:
        """Raises TemplateError (404-like 422) naming the known templates."""
        template = self.templates.get(name)
        if template is None:
            broken = [p for p in self.problems if p.get("template") == name]
            reason = f" It failed to load: {broken[0]['message']}" if broken else ""
            raise TemplateError(
                name,
                f"no usable template named {name!r}; known: {', '.join(sorted(self.templates))}."
                f"{reason}",
                code="unknown_template",
            )
        return template

    def match(self, goal: str) -> TemplateMatch | None:
        """The template whose pattern matches the longest part of the goal (ties: by name)."""
        best: tuple[int, str, TemplateMatch] | None = None
        for name in sorted(self.templates):
            template = self.templates[name]
            for pattern in template.match:
                found = re.search(pattern, goal, re.IGNORECASE)
                if not found:
                    continue
                span = found.end() - found.start()
                if best is None or span > best[0]:
                    groups = {
                        key: _tidy_group(value)
                        for key, value in found.groupdict().items()
                        if value and value.strip()
                    }
                    best = (span, name, TemplateMatch(template, groups))
        return best[2] if best else None


def _tidy_group(value: str) -> str:
    text = " ".join(value.split()).strip(" ,.;:!?-")
    return text[:MAX_GROUP_CHARS]


def parse_template(text: str, source: str) -> WorkflowTemplate:
    """Parse and check one template document. Raises TemplateError naming ``source``."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TemplateError(source, f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise TemplateError(source, f"{source} must hold a mapping with name, title and steps")
    try:
        template = WorkflowTemplate.model_validate(document)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top)"
        raise TemplateError(
            str(document.get("name") or source), f"{source}: {where}: {first['msg']}"
        ) from exc
    _check(template)
    return template


def load_templates(directories: Iterable[Path]) -> TemplateLibrary:
    """Read ``*.yaml``/``*.yml`` from the built-in folder, then from ``directories`` in order."""
    templates: dict[str, WorkflowTemplate] = {}
    sources: dict[str, str] = {}
    problems: list[dict[str, str]] = []
    for directory in (BUILTIN_TEMPLATE_DIR, *directories):
        if not directory.is_dir():
            problems.append({"file": str(directory), "message": "not a readable directory"})
            continue
        files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
        for path in files:
            try:
                if path.stat().st_size > MAX_TEMPLATE_FILE_BYTES:
                    too_big = f"{path} is over {MAX_TEMPLATE_FILE_BYTES} bytes"
                    raise TemplateError(path.stem, too_big)
                template = parse_template(path.read_text(encoding="utf-8"), str(path))
            except (TemplateError, OSError, UnicodeDecodeError) as exc:
                name = exc.template if isinstance(exc, TemplateError) else path.stem
                problems.append({"file": str(path), "template": name, "message": str(exc)})
                continue
            templates[template.name] = template
            sources[template.name] = str(path)
    return TemplateLibrary(templates, sources, problems)
