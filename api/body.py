"""Strict JSON request bodies: the right content type (UTF-8 only), valid UTF-8 and JSON, no
NaN/Infinity or numbers out of range, bounded nesting, an object at the top. Each failure says
what was wrong and where."""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from flask import current_app, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from api.errors import ApiError, validation_details

ModelT = TypeVar("ModelT", bound=BaseModel)

MAX_NESTING_DEPTH = 64
MAX_NUMBER_DIGITS = 100  # longer integer literals are refused rather than parsed
_SHOWN_NUMBER_CHARS = 40


class _BadNumber(ValueError):
    """A JSON number or constant the API refuses (NaN, Infinity, out of range, too long)."""


def _reject_constant(name: str) -> Any:
    raise _BadNumber(f"{name} is not valid JSON; send a number or null")


def _shown_number(text: str) -> str:
    return text if len(text) <= _SHOWN_NUMBER_CHARS else f"{text[:_SHOWN_NUMBER_CHARS]}..."


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_NUMBER_DIGITS:
        raise _BadNumber(
            f"the integer {_shown_number(text)} has {digits} digits, over {MAX_NUMBER_DIGITS}; "
            "send large values as strings"
        )
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber(
            f"the number {_shown_number(text)} is out of range (it would be infinite); "
            "send a finite number"
        )
    return value


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


def _read_body() -> bytes:
    """The request body, or a 413 when it is over MAX_CONTENT_LENGTH (MEOWSTIK_MAX_BODY_BYTES).

    With a Content-Length, Werkzeug refuses an oversized body before reading it. Without one
    (``Transfer-Encoding: chunked``) it stops reading at the limit and returns what it read, as
    if that were the whole body: a body that reaches the limit is refused here instead of being
    parsed truncated (one exactly at the limit is refused too; it cannot be told apart).
    """
    raw = request.get_data(cache=True)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if request.content_length is None and limit is not None and len(raw) >= limit:
        raise RequestEntityTooLarge()
    return raw


def json_body() -> dict[str, Any]:
    """The request's JSON object, or an ApiError (400/415) that says how to fix the request."""
    if not request.mimetype or request.mimetype != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as JSON with 'Content-Type: application/json' "
            f"(got {request.mimetype or 'no content type'!r})",
            {"contentType": request.mimetype or None},
        )
    charset = request.mimetype_params.get("charset")
    if charset is not None and charset.strip().lower() not in {"utf-8", "utf8"}:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"JSON bodies must be UTF-8 (got charset={charset[:40]!r}); send UTF-8 and "
            "'Content-Type: application/json'",
            {"charset": charset[:40]},
        )
    raw = _read_body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400,
            "malformed_json",
            f"the body is not valid UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start} "
            f"({exc.reason}); JSON bodies must be UTF-8",
            {"offset": exc.start},
        ) from exc
    try:
        data = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
            parse_float=_parse_float,
        )
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "malformed_json",
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            {"line": exc.lineno, "column": exc.colno},
        ) from exc
    except RecursionError as exc:  # deeper than the parser's own stack allows
        raise ApiError(
            400,
            "malformed_json",
            f"the body is not acceptable JSON: it nests far deeper than {MAX_NESTING_DEPTH} "
            "levels; flatten it",
            {"reason": "too_deeply_nested", "limit": MAX_NESTING_DEPTH},
        ) from exc
    except ValueError as exc:
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
            {"limit": MAX_NESTING_DEPTH},
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
