"""How a route module declares its OpenAPI operations: ``Operation`` (method, Flask rule,
summary, tag, parameters, request model, responses) and the blocks several modules share.

Each module that registers routes (api/routes/*.py, and api/auth.py for the login pages) ends
with an ``OPERATIONS`` tuple, one entry per route, next to the views it describes; api/openapi.py
collects them into the document. This module imports no route module, so every route module can
import it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

REF = "#/components/schemas/{model}"

Schema = dict[str, Any]
# A response body: a pydantic model (generated, referenced), or a JSON Schema written here.
Body = type[BaseModel] | Schema


@dataclass(frozen=True)
class Param:
    name: str
    location: str  # path | query | header
    schema: Schema
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Reply:
    """One documented response: its description, body per media type, and headers."""

    description: str
    content: dict[str, Body | None] = field(default_factory=dict)
    headers: dict[str, Schema] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    method: str  # lower case
    rule: str  # the Flask rule, e.g. /api/orchestrator/sessions/<session_id>
    endpoint: str  # the Flask endpoint, e.g. orchestrator.get_session
    summary: str
    tag: str
    replies: dict[int, Reply]
    params: tuple[Param, ...] = ()
    query: type[BaseModel] | None = None  # every field becomes a query parameter
    body: Body | None = None  # the request body's schema
    body_media: str = "application/json"
    errors: tuple[int, ...] = ()  # statuses answered with the Error schema
    auth: bool = True
    description: str = ""

    @property
    def path(self) -> str:
        """The OpenAPI path template: <name> and <converter:name> become {name}."""
        return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", self.rule)


# --- building blocks ------------------------------------------------------------------------

JSON = "application/json"
HTML = "text/html"
TEXT = "text/plain"


def ok(model: Body, description: str = "OK", *, headers: dict[str, Schema] | None = None):
    return Reply(description, {JSON: model}, headers or {})


def html(description: str, headers: dict[str, Schema] | None = None) -> Reply:
    return Reply(description, {HTML: {"type": "string"}}, headers or {})


def path_param(name: str, description: str) -> Param:
    return Param(name, "path", {"type": "string", "minLength": 1}, description, required=True)


SESSION_ID = path_param("session_id", "the session id (orch-...)")
LOCATION = {"Location": {"type": "string"}}

# Every status answered with the Error schema, as components.responses entries.
ERROR_REPLIES: dict[int, tuple[str, str, dict[str, Schema]]] = {
    400: ("BadRequest", "malformed JSON, or a body that is not an object or nests too deeply", {}),
    401: (
        "Unauthenticated",
        "no valid credentials (bearer token or session cookie)",
        {"WWW-Authenticate": {"type": "string"}},
    ),
    403: ("Forbidden", "the credentials do not allow this operation", {}),
    404: ("NotFound", "no such resource", {}),
    405: ("MethodNotAllowed", "the path (after decoding) names a route without this method", {}),
    409: ("Conflict", "the resource's state does not allow this change", {}),
    413: ("PayloadTooLarge", "the body is larger than MEOWSTIK_MAX_BODY_BYTES", {}),
    415: ("UnsupportedMediaType", "the body is not sent as application/json", {}),
    422: ("ValidationFailed", "a field, parameter or plan is invalid; details name it", {}),
    429: (
        "RateLimited",
        "too many requests; retry after Retry-After seconds",
        {"Retry-After": {"type": "integer", "minimum": 0}},
    ),
    414: (
        "UriTooLong",
        "the request line (method, path, query) is longer than 8190 bytes; gunicorn refuses it "
        "before Flask sees it, in the same JSON shape (api/gunicorn_conf.py)",
        {},
    ),
    503: ("Unavailable", "Redis or the broker did not answer; retry shortly", {}),
}

AUTH_ERRORS = (401, 403, 429)
# Open operations still answer 403 to clients not on loopback while no tokens are configured.
OPEN_ERRORS = (403,)
STORE = (503,)
BODY = (400, 413, 415, 422)
BY_ID = (404, 405)  # 405: a path parameter holding "/" can reach another route's path
