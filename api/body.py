"""Strict JSON request bodies: the right content type, valid JSON, no NaN/Infinity, bounded
nesting, an object at the top. Each failure says what was wrong and where."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from api.errors import ApiError, validation_details

ModelT = TypeVar("ModelT", bound=BaseModel)

MAX_NESTING_DEPTH = 64


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON; send a number or null")


def _depth(value: Any, limit: int) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > limit:
            return depth
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def json_body() -> dict[str, Any]:
    """The request's JSON object, or an ApiError (400/415) that says how to fix the request."""
    if not request.mimetype or request.mimetype != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as JSON with 'Content-Type: application/json' "
            f"(got {request.mimetype or 'no content type'!r})",
        )
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "malformed_json",
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            {"line": exc.lineno, "column": exc.colno},
        ) from exc
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed_json", f"the body is not acceptable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(
            400, "malformed_json", f"the body must be a JSON object, got {type(data).__name__}"
        )
    if _depth(data, MAX_NESTING_DEPTH) > MAX_NESTING_DEPTH:
        raise ApiError(
            400,
            "too_deeply_nested",
            f"the body nests deeper than {MAX_NESTING_DEPTH} levels; flatten it",
        )
    return data


def query_args(model: type[ModelT]) -> ModelT:
    """The query string validated by ``model``; a 422 naming the parameter (query.<name>)."""
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        details = validation_details(exc, root="query")
        raise ApiError(
            422,
            "validation_error",
            f"invalid query at {details[0]['location']}: {details[0]['message']}",
            {"errors": details},
        ) from exc
