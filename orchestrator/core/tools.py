"""Tools (pure): Python functions a model may call, with a JSON schema derived from their type
hints, a registry of them by name, and ``invoke``, which turns a model's tool call into a result
the model can read.

    @tool(idempotent=True)
    def word_count(context: ToolContext, text: str, unique: bool = False) -> int:
        \"\"\"Count the words of a text.\"\"\"
        words = text.split()
        return len(set(words) if unique else words)

A tool's first parameter is the ``ToolContext`` (the step's input, its state and workspace); it
is not part of the schema. The others become the JSON schema's properties through pydantic
(``Annotated[int, Field(ge=1, description=...)]`` works); the docstring is the default
description and its ``Args:`` lines describe the parameters. ``idempotent`` says whether running
the tool twice with the same arguments is as good as once: a durable agent loop replays those
and never re-runs the others.

``ToolRegistry.invoke`` validates the arguments and calls the tool. A bad call (unknown tool,
arguments that are not JSON or break the schema), a ``ToolError`` and any other exception inside
the tool become an error result ``{"error": {"type", "message", "details"}}`` for the model to
read, not a step failure. What is meant for the orchestrator propagates: ``InputRequired``
(ask_operator), ``StepError`` (a tool failing or retrying the step on purpose) and
``StoreUnavailableError`` (Redis down: the step retries; the model could do nothing about it).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import typing
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import PydanticSerializationError, to_jsonable_python

from orchestrator.core.errors import (
    OrchestratorError,
    StepError,
    StoreUnavailableError,
    ToolCatalogError,
    ToolError,
    UnknownToolError,
)
from orchestrator.core.models import AgentDefinition
from orchestrator.core.steps import InputRequired, StateView, StepInput, WorkspaceView

TOOL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # what OpenAI's function names allow
_ARGS_HEADING = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$")
_SECTION_HEADING = re.compile(r"^\s*(Returns|Raises|Yields|Examples?|Notes?):\s*$")
_ARG_LINE = re.compile(r"^\s+(\w+)(\s*\([^)]*\))?:\s*(.*)$")

ToolFunction = Callable[..., Any]


@dataclass(frozen=True)
class ToolContext:
    """What a tool is given first: the step it runs for, and through it the session's state and
    workspace (bound to the session and the agent)."""

    step_input: StepInput

    @property
    def state(self) -> StateView:
        if self.step_input.state is None:
            raise ToolError("this step has no session state (it does not run in a session)")
        return self.step_input.state

    @property
    def workspace(self) -> WorkspaceView:
        if self.step_input.workspace is None:
            raise ToolError("this step has no workspace (it does not run in a session)")
        return self.step_input.workspace


@dataclass(frozen=True)
class Tool:
    """A callable tool: its name, description and JSON schema as a model sees them, whether it
    is idempotent, and the function with the pydantic model that validates its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]
    idempotent: bool
    function: ToolFunction = field(repr=False, compare=False)
    arguments: type[BaseModel] = field(repr=False, compare=False)

    def alias(self, name: str, description: str | None = None) -> Tool:
        """The same tool under another name (e.g. the spec's ``file_get``)."""
        _check_name(name, self.function)
        return dataclasses.replace(self, name=name, description=description or self.description)

    def openai(self) -> dict[str, Any]:
        """The tool as OpenAI's chat API takes it in ``tools=[...]``."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True)
class ToolResult:
    """What a call produced: ``value`` (JSON-able) or ``error`` (type, message, details)."""

    value: Any = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def document(self) -> Any:
        """What the model reads: the value, or ``{"error": {...}}``."""
        return self.value if self.error is None else {"error": self.error}

    def as_json(self) -> str:
        """``document()`` as the content of the model's tool message."""
        return json.dumps(self.document(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def failure(cls, type: str, message: str, **details: Any) -> ToolResult:
        return cls(error={"type": type, "message": message, "details": details})


@overload
def tool(function: ToolFunction, /) -> Tool: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None, idempotent: bool = False
) -> Callable[[ToolFunction], Tool]: ...
def tool(
    function: ToolFunction | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    idempotent: bool = False,
) -> Tool | Callable[[ToolFunction], Tool]:
    """Make a function a Tool (``@tool`` or ``@tool(name=..., idempotent=True)``). The name
    defaults to the function's, the description to its docstring. Raises ToolCatalogError when
    the function cannot be a tool."""

    def make(fn: ToolFunction) -> Tool:
        return build_tool(fn, name=name, description=description, idempotent=idempotent)

    return make if function is None else make(function)


def build_tool(
    function: ToolFunction,
    *,
    name: str | None = None,
    description: str | None = None,
    idempotent: bool = False,
) -> Tool:
    """A Tool from ``function`` (see ``tool``)."""
    tool_name: str = name or str(getattr(function, "__name__", ""))
    _check_name(tool_name, function)
    summary, arg_docs = _parse_docstring(inspect.getdoc(function) or "")
    arguments = _arguments_model(tool_name, function, arg_docs)
    return Tool(
        name=tool_name,
        description=(description or summary or tool_name).strip(),
        parameters=_without_titles(arguments.model_json_schema()),
        idempotent=idempotent,
        function=function,
        arguments=arguments,
    )


class ToolRegistry:
    """Tools by name. Names are unique: registering another tool under a taken name fails."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._origins: dict[str, str] = {}
        for item in tools:
            self.register(item)

    def register(self, item: Tool, origin: str = "code") -> None:
        """Add ``item``; ``origin`` (a module, an entry point) names it in errors. Raises
        ToolCatalogError when the name is taken by another tool."""
        known = self._tools.get(item.name)
        if known is not None and known is not item:
            raise ToolCatalogError(
                f"tool name {item.name!r} from {origin} is already taken by the tool from "
                f"{self._origins[item.name]}; tool names must be unique: rename one "
                "(@tool(name=...))",
            )
        self._tools[item.name] = item
        self._origins.setdefault(item.name, origin)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._tools))

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def get(self, name: str) -> Tool:
        """Raises ToolError naming the registered tools when ``name`` is not one."""
        found = self._tools.get(name)
        if found is None:
            raise ToolError(
                f"no tool is named {name!r}; registered tools: {', '.join(self.names())}",
                details={"tool": name, "registeredTools": list(self.names())},
            )
        return found

    def openai_tools(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """The named tools (in order, once each) as OpenAI's ``tools=[...]``."""
        return [self.get(name).openai() for name in dict.fromkeys(names)]

    def invoke(
        self, name: str, arguments: str | dict[str, Any] | None, context: ToolContext
    ) -> ToolResult:
        """Call tool ``name`` with the model's ``arguments`` (its JSON text or the decoded
        object). Every failure the model could act on is an error result (module docstring);
        InputRequired, StepError and StoreUnavailableError propagate."""
        found = self._tools.get(name)
        if found is None:
            return ToolResult.failure(
                "unknown_tool",
                f"no tool is named {name!r}; call one of {', '.join(self.names())}",
                tool=name,
            )
        try:
            values = _validated(found, arguments)
            return ToolResult(value=_jsonable(found.function(context, **values)))
        except (InputRequired, StepError, StoreUnavailableError):
            raise
        except OrchestratorError as exc:
            return ToolResult(
                error={"type": exc.code, "message": exc.message, "details": exc.details}
            )
        except Exception as exc:  # a tool's bug or its library's failure: the model is told
            return ToolResult.failure("tool_failed", f"{name} failed: {type(exc).__name__}: {exc}")


def check_agent_tools(definition: AgentDefinition, registered: Collection[str]) -> None:
    """Raise UnknownToolError for the first tool a capability names that is not registered."""
    for capability in definition.capabilities:
        for name in capability.tools:
            if name not in registered:
                raise UnknownToolError(capability.name, name, registered)


def agent_tools(
    definition: AgentDefinition, capabilities: Collection[str] | None = None
) -> list[str]:
    """The tools the agent's capabilities name (only those of ``capabilities`` when given), in
    order, once each: what its model may call."""
    named = [
        name
        for capability in definition.capabilities
        if capabilities is None or capability.name in capabilities
        for name in capability.tools
    ]
    return list(dict.fromkeys(named))


def missing_tools(definition: AgentDefinition, registered: Collection[str]) -> list[str]:
    """The tools the agent's capabilities name that are not registered, in order, once each."""
    named = [name for capability in definition.capabilities for name in capability.tools]
    return [name for name in dict.fromkeys(named) if name not in registered]


# --- building and calling ------------------------------------------------------------------------
def _check_name(name: str, function: object) -> None:
    if not re.fullmatch(TOOL_NAME_PATTERN, name or ""):
        raise ToolCatalogError(
            f"tool name {name!r} (of {function!r}) is not allowed: use 1-64 letters, digits, "
            "'_' or '-'"
        )


def _arguments_model(
    name: str, function: ToolFunction, arg_docs: dict[str, str]
) -> type[BaseModel]:
    """A pydantic model of every parameter after the first (the context). Fields get internal
    names and the parameters' names as aliases, so a parameter may be called ``schema`` or
    ``json`` without shadowing BaseModel's attributes."""
    where = f"tool {name!r} ({getattr(function, '__qualname__', function)!r})"
    try:
        signature = inspect.signature(function)
        hints = typing.get_type_hints(function, include_extras=True)
    except (TypeError, ValueError, NameError) as exc:
        raise ToolCatalogError(f"{where}: its signature cannot be read ({exc})") from exc
    parameters = list(signature.parameters.values())
    if not parameters or parameters[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise ToolCatalogError(f"{where}: the first parameter must take the ToolContext")
    fields: dict[str, Any] = {}
    for index, parameter in enumerate(parameters[1:]):
        if parameter.kind not in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        ):
            raise ToolCatalogError(f"{where}: parameter {parameter.name!r} must be a named one")
        if parameter.name not in hints:
            raise ToolCatalogError(f"{where}: parameter {parameter.name!r} needs a type hint")
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[f"p{index}"] = (
            hints[parameter.name],
            Field(default, alias=parameter.name, description=arg_docs.get(parameter.name)),
        )
    try:
        model: type[BaseModel] = create_model(
            f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
        )
        model.model_json_schema()
    except Exception as exc:  # pydantic's schema errors have no common base worth naming
        raise ToolCatalogError(f"{where}: its parameters have no JSON schema ({exc})") from exc
    return model


def _validated(found: Tool, arguments: str | dict[str, Any] | None) -> dict[str, Any]:
    """The keyword arguments to call ``found`` with; ToolError when the model's are unusable."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise _invalid(found, f"the arguments are not JSON ({exc})") from exc
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise _invalid(
            found, f"the arguments must be a JSON object, not {type(arguments).__name__}"
        )
    try:
        model = found.arguments.model_validate(arguments)
    except ValidationError as exc:
        errors = [
            {"location": ".".join(map(str, e["loc"])), "message": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        why = "; ".join(f"{e['location']}: {e['message']}" for e in errors)
        raise _invalid(found, why, errors) from exc
    return {
        info.alias or name: getattr(model, name) for name, info in type(model).model_fields.items()
    }


def _invalid(found: Tool, why: str, errors: list[dict[str, Any]] | None = None) -> ToolError:
    error = ToolError(
        f"invalid arguments for {found.name}: {why}. The parameters' JSON schema: "
        f"{json.dumps(found.parameters, separators=(',', ':'))}",
        details={"tool": found.name, "errors": errors or []},
    )
    error.code = "invalid_arguments"
    return error


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (pydantic models and dataclasses too); ToolError if not."""
    try:
        plain = to_jsonable_python(value)
        json.dumps(plain, allow_nan=False)
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        raise ToolError(f"the tool returned a value that is not JSON ({exc})") from exc
    return plain


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The docstring's text before its sections, and its ``Args:`` entries by name."""
    summary: list[str] = []
    args: dict[str, str] = {}
    section, current = "summary", None
    for line in doc.splitlines():
        if _ARGS_HEADING.match(line):
            section = "args"
        elif _SECTION_HEADING.match(line):
            section = "other"
        elif section == "summary":
            summary.append(line)
        elif section == "args":
            entry = _ARG_LINE.match(line)
            if entry:
                current = entry.group(1)
                args[current] = entry.group(3).strip()
            elif current and line.strip():
                args[current] = f"{args[current]} {line.strip()}"
    paragraphs = "\n".join(summary).strip().split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs), args


def _without_titles(schema: Any, *, in_properties: bool = False) -> Any:
    """pydantic's schema without its generated ``title`` entries (noise to a model); a property
    that happens to be named ``title`` stays."""
    if isinstance(schema, dict):
        return {
            key: _without_titles(value, in_properties=key in ("properties", "$defs"))
            for key, value in schema.items()
            if in_properties or key != "title"
        }
    if isinstance(schema, list):
        return [_without_titles(item) for item in schema]
    return schema
