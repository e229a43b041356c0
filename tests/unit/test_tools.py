"""Tools (orchestrator/core/tools.py): the JSON schema derived from type hints, the registry and
its OpenAI shape, and invoke, which turns every failure the model could act on into a result."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from orchestrator.core.errors import (
    PermanentStepError,
    StoreUnavailableError,
    ToolCatalogError,
    ToolError,
    UnknownToolError,
)
from orchestrator.core.models import AgentDefinition, PlanStep
from orchestrator.core.steps import InputRequired, StepInput
from orchestrator.core.tools import ToolContext, ToolRegistry, ToolResult, check_agent_tools, tool
from tests.support.spec import SPEC_CUSTOM_AGENT_REST_EXAMPLE, SPEC_SECURITY_SCANNER_BODY


def context(**changes: Any) -> ToolContext:
    step = PlanStep(id="s", title="s", required_capabilities=["x"])
    fields = dict(session_id="sid", step_id="s", job_id="sid.s", goal="g", step=step)
    return ToolContext(StepInput(**fields, agent_id="a-1", attempt=1, **changes))


class Point(BaseModel):
    x: int
    y: int = 0


@tool(idempotent=True)
def search(
    ctx: ToolContext,
    query: str,
    limit: Annotated[int, Field(ge=1, le=50)] = 10,
    mode: Literal["fast", "deep"] = "fast",
    tags: list[str] | None = None,
) -> dict[str, Any]:
    """Search the notes for a query.

    Longer explanation, also for the model.

    Args:
        query: words to look for.
        limit: how many hits to return,
            at most fifty.

    Returns:
        the hits.
    """
    return {
        "query": query,
        "limit": limit,
        "mode": mode,
        "tags": tags,
        "agent": ctx.step_input.agent_id,
    }


@tool(name="shadowing", description="Parameters named like BaseModel attributes.")
def shadowing(
    ctx: ToolContext, schema: dict[str, Any], json: str = "x", copy: int = 1
) -> list[Any]:
    return [schema, json, copy]


@tool
def plot(ctx: ToolContext, point: Point) -> Point:
    """Echo a point."""
    return Point(x=point.x * 2, y=point.y)


@tool
def broken(ctx: ToolContext) -> None:
    """Always fails."""
    raise RuntimeError("disk on fire")


# --- the schema ---------------------------------------------------------------------------------


def test_the_schema_comes_from_the_hints_with_defaults_required_and_docstring_descriptions():
    assert search.name == "search" and search.idempotent is True
    assert (
        search.description
        == "Search the notes for a query.\n\nLonger explanation, also for the model."
    )
    assert search.parameters == {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "query": {"type": "string", "description": "words to look for."},
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": 50,
                "default": 10,
                "description": "how many hits to return, at most fifty.",
            },
            "mode": {"type": "string", "enum": ["fast", "deep"], "default": "fast"},
            "tags": {
                "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                "default": None,
            },
        },
        "required": ["query"],
    }


def test_the_context_parameter_is_not_in_the_schema_and_tools_are_not_idempotent_by_default():
    assert "ctx" not in search.parameters["properties"]
    assert plot.idempotent is False and broken.parameters["properties"] == {}


def test_nested_models_are_described_by_reference_and_a_property_named_title_survives():
    @tool
    def titled(ctx: ToolContext, title: str, point: Point) -> str:
        """Has a title."""
        return title

    assert set(titled.parameters["properties"]) == {"title", "point"}
    assert titled.parameters["properties"]["point"] == {"$ref": "#/$defs/Point"}
    assert titled.parameters["$defs"]["Point"]["properties"]["x"] == {"type": "integer"}
    assert "title" not in titled.parameters["$defs"]["Point"]


@pytest.mark.parametrize(
    "define, problem",
    [
        (lambda: tool(lambda: None), "not allowed"),  # <lambda> is no tool name
        (lambda: tool(name="no context")(lambda ctx: None), "not allowed"),
        (lambda: tool(name="empty")(lambda: None), "first parameter"),
        (lambda: tool(name="untyped")(lambda ctx, x: None), "needs a type hint"),
    ],
)
def test_a_function_that_cannot_be_a_tool_is_refused_clearly(define, problem):
    with pytest.raises(ToolCatalogError, match=problem):
        define()


def test_star_arguments_are_refused():
    def star(ctx: ToolContext, *words: str) -> None:
        return None

    with pytest.raises(ToolCatalogError, match="'words' must be a named one"):
        tool(star)


# --- the registry -------------------------------------------------------------------------------


def test_openai_tools_gives_the_named_tools_in_the_chat_apis_shape():
    registry = ToolRegistry([search, plot])

    assert registry.names() == ("plot", "search")
    assert registry.openai_tools(["search", "search"]) == [
        {
            "type": "function",
            "function": {
                "name": "search",
                "description": search.description,
                "parameters": search.parameters,
            },
        }
    ]
    with pytest.raises(ToolError, match="no tool is named 'nope'; registered tools: plot, search"):
        registry.openai_tools(["nope"])


def test_a_second_tool_under_a_taken_name_is_refused_naming_both_origins():
    registry = ToolRegistry()
    registry.register(search, "module a")
    registry.register(search, "module b")  # the same tool, imported again: fine
    twin = plot.alias("search")

    with pytest.raises(
        ToolCatalogError, match="from module c is already taken by the tool from module a"
    ):
        registry.register(twin, "module c")


def test_an_alias_is_the_same_tool_under_another_name():
    alias = search.alias("find", "Find notes.")
    assert (alias.name, alias.description, alias.parameters) == (
        "find",
        "Find notes.",
        search.parameters,
    )
    assert alias.function is search.function


# --- invoke -------------------------------------------------------------------------------------


def test_invoke_validates_the_arguments_and_calls_the_tool_with_the_context():
    registry = ToolRegistry([search])

    result = registry.invoke("search", '{"query": "redis", "limit": "5"}', context())

    assert result == ToolResult(
        value={"query": "redis", "limit": 5, "mode": "fast", "tags": None, "agent": "a-1"}
    )
    assert result.ok and result.as_json().startswith('{"query":"redis","limit":5')


def test_parameters_named_like_model_attributes_reach_the_function():
    result = ToolRegistry([shadowing]).invoke(
        "shadowing", {"schema": {"a": 1}, "json": "j"}, context()
    )
    assert result.value == [{"a": 1}, "j", 1]


def test_a_returned_model_becomes_plain_json():
    assert ToolRegistry([plot]).invoke("plot", {"point": {"x": 2}}, context()).value == {
        "x": 4,
        "y": 0,
    }


@pytest.mark.parametrize(
    "arguments, location",
    [
        ({"limit": 5}, "query"),  # required
        ({"query": "q", "limit": 500}, "limit"),  # over the bound
        ({"query": "q", "mode": "slow"}, "mode"),  # not in the enum
        ({"query": "q", "colour": "red"}, "colour"),  # not a parameter
    ],
)
def test_arguments_that_break_the_schema_are_an_error_result_naming_the_parameter(
    arguments, location
):
    result = ToolRegistry([search]).invoke("search", arguments, context())

    assert not result.ok and result.error is not None
    assert result.error["type"] == "invalid_arguments"
    assert [e["location"] for e in result.error["details"]["errors"]] == [location]
    assert '"properties"' in result.error["message"]  # the schema, to correct the call
    assert result.document() == {"error": result.error}


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", "3"])
def test_arguments_that_are_not_a_json_object_are_an_error_result(arguments):
    result = ToolRegistry([search]).invoke("search", arguments, context())
    assert result.error is not None and result.error["type"] == "invalid_arguments"


def test_an_unknown_tool_is_an_error_result_listing_the_tools():
    result = ToolRegistry([search, plot]).invoke("nope", "{}", context())
    assert result.error == {
        "type": "unknown_tool",
        "message": "no tool is named 'nope'; call one of plot, search",
        "details": {"tool": "nope"},
    }


def test_an_exception_inside_a_tool_is_an_error_result_not_a_step_failure():
    result = ToolRegistry([broken]).invoke("broken", "", context())
    assert result.error == {
        "type": "tool_failed",
        "message": "broken failed: RuntimeError: disk on fire",
        "details": {},
    }


def test_a_tool_error_keeps_its_message_and_details():
    @tool
    def refuse(ctx: ToolContext) -> None:
        """Refuses."""
        raise ToolError("no token configured", details={"setting": "MEOWSTIK_X"})

    result = ToolRegistry([refuse]).invoke("refuse", None, context())
    assert result.error == {
        "type": "tool_error",
        "message": "no token configured",
        "details": {"setting": "MEOWSTIK_X"},
    }


def test_a_value_that_is_not_json_is_an_error_result():
    @tool
    def leak(ctx: ToolContext) -> Any:
        """Returns something unserialisable."""
        return {"handle": object()}

    result = ToolRegistry([leak]).invoke("leak", {}, context())
    assert result.error is not None and "not JSON" in result.error["message"]


@pytest.mark.parametrize(
    "signal",
    [
        InputRequired("Which branch?"),
        PermanentStepError("give up on purpose"),
        StoreUnavailableError.no_answer("ConnectionError"),
    ],
)
def test_what_is_meant_for_the_orchestrator_propagates(signal):
    @tool
    def signalling(ctx: ToolContext) -> None:
        """Signals."""
        raise signal

    with pytest.raises(type(signal)):
        ToolRegistry([signalling]).invoke("signalling", {}, context())


# --- the registration check ---------------------------------------------------------------------


def test_an_agent_naming_an_unregistered_tool_is_refused_naming_the_tool_and_the_registered():
    definition = AgentDefinition.model_validate(SPEC_CUSTOM_AGENT_REST_EXAMPLE)

    with pytest.raises(UnknownToolError) as error:
        check_agent_tools(definition, {"file_get", "http_get"})

    assert error.value.http_status == 422 and error.value.code == "unknown_tool"
    assert error.value.details == {
        "field": "capabilities",
        "capability": "custom_capability",
        "tool": "custom_tool",
        "registeredTools": ["file_get", "http_get"],
    }
    check_agent_tools(
        AgentDefinition.model_validate(SPEC_SECURITY_SCANNER_BODY),
        {"file_get", "github_code_search"},
    )
