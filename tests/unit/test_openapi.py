"""The OpenAPI 3.1 document (/openapi.json) and its HTML rendering (/docs).

The document is validated against the official OpenAPI 3.1 JSON Schema (the copy bundled with
schemathesis, schemathesis.specs.openapi.definitions.OPENAPI_31, checked with jsonschema's
Draft 2020-12 validator), and every schema in it against the JSON Schema 2020-12 meta-schema.
Real responses of the app (on fakeredis, with a session, a worker, logs and an autoscaler record)
are validated against the response schemas the document declares for them.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
from flask import Flask
from schemathesis.specs.openapi.definitions import OPENAPI_31

from api import auth, create_app
from api.openapi import OPERATIONS, build_document, undocumented_routes
from api.operations import Operation, Reply, ok
from api.schemas import Health
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from orchestrator.store.keys import Keys
from orchestrator.store.workers import WorkerRegistry
from tests.support.recording import RecordingDispatcher
from tests.support.world import build_world

OPEN = {"/healthz", "/healthcheck", "/openapi.json", "/docs", "/login"}
STATIC = {"/static/{filename}", "/dashboard/static/{filename}"}
AGENT = "researcher-001"


@pytest.fixture
def env(fake_redis):
    settings = Settings()
    world = build_world(fake_redis, settings, prefix=settings.key_prefix)
    app = create_app(settings, redis_client=fake_redis, dispatcher=RecordingDispatcher())
    return app, app.test_client(), world, fake_redis


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return build_document()


def refs_in(value: Any):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from refs_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from refs_in(item)


def test_the_document_is_valid_openapi_3_1(doc):
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "Meowstik orchestration"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", doc["info"]["version"])
    jsonschema.Draft202012Validator(OPENAPI_31).validate(doc)
    for name, schema in doc["components"]["schemas"].items():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise AssertionError(f"components.schemas.{name}: {exc.message}") from exc
    for ref in set(refs_in(doc)):
        assert ref.startswith("#/"), ref
        target: Any = doc
        for part in ref[2:].split("/"):
            assert part in target, f"{ref} does not resolve"
            target = target[part]


def test_an_invalid_document_is_refused_by_the_validator(doc):
    """The validator used above does catch mistakes (so the test above means something)."""
    broken = json.loads(json.dumps(doc))
    broken["paths"]["/healthz"]["get"]["responses"]["200"].pop("description")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(OPENAPI_31).validate(broken)


def test_the_app_serves_the_document_and_every_route_is_in_it(env, doc):
    app, client, *_ = env
    assert undocumented_routes(app) == ([], [])
    served = client.get("/openapi.json")
    assert served.status_code == 200 and served.get_json() == doc
    documented = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert len(documented) == len(OPERATIONS)


def test_a_route_added_without_an_entry_is_reported(env):
    app, *_ = env
    app.add_url_rule("/api/new/<thing>", "new_thing", lambda thing: thing, methods=["PUT"])
    missing, stale = undocumented_routes(app)
    assert missing == ["PUT /api/new/<thing> (new_thing)"] and stale == []
    bare = Flask("bare")  # an app without the routes: every entry is stale
    _, stale = undocumented_routes(bare)
    assert len(stale) == len(OPERATIONS) - 1  # Flask's own /static route exists in both


def test_every_operation_but_the_open_ones_requires_bearer_or_cookie_auth(doc):
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearerAuth"]["description"],
    }
    assert (schemes["cookieAuth"]["type"], schemes["cookieAuth"]["in"]) == ("apiKey", "cookie")
    assert schemes["cookieAuth"]["name"] == "meowstik_session"
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if path in OPEN | STATIC:
                assert op["security"] == [], (method, path)
                assert "$ref" not in op["responses"].get("401", {}), (method, path)
            else:
                assert op["security"] == [{"bearerAuth": []}, {"cookieAuth": []}], (method, path)
                for status in ("401", "403", "429"):
                    assert op["responses"][status]["$ref"].startswith("#/components/responses/")


def test_the_open_operations_are_exactly_the_ones_auth_lets_through():
    assert {op.endpoint for op in OPERATIONS if not op.auth} == auth.PUBLIC_ENDPOINTS


def test_dashboard_pages_document_the_redirect_to_login(doc):
    pages = (
        *("/", "/sessions/{session_id}", "/agents", "/agents/{agent_id}", "/queues", "/workers"),
        *("/costs", "/experiments", "/experiments/{name}"),
    )
    for path in pages:
        redirect = doc["paths"][path]["get"]["responses"]["302"]
        assert "Location" in redirect["headers"] and "text/html" in redirect["content"]


def test_errors_share_one_schema_with_their_headers(doc):
    responses = doc["components"]["responses"]
    for response in responses.values():
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}
    assert responses["RateLimited"]["headers"]["Retry-After"]["required"] is True
    assert responses["Unauthenticated"]["headers"]["WWW-Authenticate"]["required"] is True
    error = doc["components"]["schemas"]["Error"]
    body = doc["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error"] and set(body["required"]) == {
        "code",
        "message",
        "details",
    }
    bodies = [
        op
        for item in doc["paths"].values()
        for op in item.values()
        if "application/json" in op.get("requestBody", {}).get("content", {})
    ]
    # orchestrate, plans, input, context, budget, agents x2, experiments, state put, state tx
    assert len(bodies) == 10
    for op in bodies:
        assert {"400", "413", "415", "422"} <= set(op["responses"]), op["operationId"]


def test_non_json_endpoints_declare_their_media_types(doc):
    def media(path, status="200"):
        return set(doc["paths"][path]["get"]["responses"][status]["content"])

    assert media("/metrics") == {"text/plain"}
    assert media("/api/orchestrator/sessions/{session_id}/events") == {"text/event-stream"}
    pages = (
        *("/", "/sessions/{session_id}", "/agents", "/agents/{agent_id}", "/queues", "/workers"),
        *("/costs", "/experiments", "/experiments/{name}"),
    )
    for page in (*pages, "/docs"):
        assert media(page) == {"text/html"}, page
    assert media("/sessions/{session_id}", "404") == {"text/html"}
    # an unknown agent (experiment) is an HTML page; an id holding "/" matches no route: JSON 404
    assert media("/agents/{agent_id}", "404") == {"text/html", "application/json"}
    assert media("/experiments/{name}", "404") == {"text/html", "application/json"}
    assert media("/healthcheck") == {"text/plain"}


# --- real responses against the declared schemas ------------------------------------------------


def operation_for(doc, method: str, url: str) -> tuple[str, dict]:
    path = url.split("?", 1)[0]
    for template, item in doc["paths"].items():
        pattern = re.escape(template).replace(r"\{filename\}", ".+")  # <path:filename>
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", pattern) + "$"
        if re.match(pattern, path) and method in item:
            return template, item[method]
    raise AssertionError(f"{method} {url} is not documented")


def check_response(doc, method: str, url: str, response) -> None:
    template, op = operation_for(doc, method, url)
    declared = op["responses"].get(str(response.status_code))
    assert declared, f"{method} {url}: status {response.status_code} is not documented"
    if "$ref" in declared:
        declared = doc["components"]["responses"][declared["$ref"].rsplit("/", 1)[-1]]
    content = declared["content"]
    assert response.mimetype in content, (url, response.mimetype, list(content))
    schema = content[response.mimetype].get("schema")
    if response.mimetype == "application/json":
        validator = jsonschema.Draft202012Validator({**schema, "components": doc["components"]})
        errors = sorted(validator.iter_errors(response.get_json()), key=str)
        assert not errors, f"{method} {url} ({template}): {errors[0]}"
    for header in declared.get("headers", {}):
        assert header in response.headers, (url, header)


def test_real_responses_match_their_declared_schemas(env, doc):
    app, client, world, fake_redis = env
    settings = app.extensions["meowstik"].settings
    body = {
        "goal": "schema check",
        "userId": "u1",
        "plan": {
            "steps": [
                {"id": "a", "title": "a", "requiredCapabilities": ["web_research"]},
                {"id": "b", "title": "b", "requiredCapabilities": ["web_research"]},
                {"id": "c", "title": "c", "requiredCapabilities": ["web_research"]},
            ]
        },
    }
    submitted = client.post("/api/orchestrator/orchestrate", json=body)
    check_response(doc, "post", "/api/orchestrator/orchestrate", submitted)
    sid = submitted.get_json()["sessionId"]
    run = world.lifecycle.begin(sid, "a", AGENT)
    world.clock.advance(1.5)
    world.lifecycle.succeed(run, StepResult({"found": [1, 2]}))
    WorkerRegistry(fake_redis, Keys(settings.key_prefix)).heartbeat(
        "w1@host",
        {"hostname": "w1@host", "pid": 42, "queues": [f"agent.{AGENT}"], "agents": [AGENT],
         "concurrency": 2, "pool": "prefork", "remote": False, "registered": ["x"]},
        now_ms=world.engine.now_ms(),
        alive_ms=10**9,
    )  # fmt: skip
    fake_redis.set(
        Keys(settings.key_prefix).autoscaler,
        json.dumps(
            {"updatedAt": "2024-01-01T00:00:00.000Z", "intervalS": 2.0, "backlogThreshold": 3,
             "agents": [{"agentId": AGENT, "workers": 2, "minWorkers": 1, "maxWorkers": 4,
                         "replicas": [f"{AGENT}.r2"], "draining": None, "backlog": 5,
                         "lastAction": "added", "lastActionAt": "2024-01-01T00:00:00.000Z"}]}
        ),
    )  # fmt: skip
    agent = {
        "id": "remote-1",
        "name": "Remote",
        "type": "http",
        "capabilities": [{"name": "web_research"}],
        "endpoint": "http://127.0.0.1:9/run",
    }
    calls = [
        ("get", "/api/orchestrator/sessions", None),
        ("get", "/api/orchestrator/sessions?userId=u1&limit=1", None),
        ("get", "/api/orchestrator/sessions?limit=0", None),
        ("get", f"/api/orchestrator/sessions/{sid}", None),
        ("get", "/api/orchestrator/sessions/orch-missing", None),
        ("patch", f"/api/orchestrator/sessions/{sid}/context", {"k": {"v": 1}}),
        ("post", f"/api/orchestrator/sessions/{sid}/input", {"stepId": "b", "value": 1}),
        ("get", f"/api/orchestrator/sessions/{sid}/logs", None),
        ("get", f"/api/orchestrator/sessions/{sid}/logs?level=nope", None),
        ("get", "/api/orchestrator/logs", None),
        ("get", "/api/orchestrator/logs?source=orchestrator&limit=2", None),
        ("get", f"/api/orchestrator/sessions/{sid}/stats", None),
        ("get", "/api/orchestrator/sessions/orch-missing/events", None),
        ("post", "/api/orchestrator/plans", {"goal": "Build a REST API for todos"}),
        ("get", "/api/orchestrator/templates", None),
        ("get", "/api/orchestrator/templates/blog_post", None),
        ("get", "/api/orchestrator/templates/nope", None),
        ("get", "/api/orchestrator/agents", None),
        ("get", "/api/orchestrator/agents?metrics=24h", None),
        ("get", "/api/orchestrator/agents?metrics=all", None),
        ("get", "/api/orchestrator/agents?metrics=week", None),
        ("get", f"/api/orchestrator/agents/{AGENT}/metrics?window=1h", None),
        ("post", "/api/orchestrator/agents", agent),
        ("post", "/api/orchestrator/agents", agent),
        ("patch", "/api/orchestrator/agents/remote-1", {"status": "draining", "maxLoad": 3}),
        ("get", "/api/orchestrator/agents/remote-1", None),
        ("delete", "/api/orchestrator/agents/remote-1", None),
        ("get", "/api/orchestrator/agents/remote-1", None),
        ("get", "/api/orchestrator/stats", None),
        ("get", "/api/orchestrator/autoscaler", None),
        ("get", "/api/workers", None),
        ("get", "/api/workers?status=true", None),
        ("get", "/api/workers?workername=nobody", None),
        ("get", "/api/queues/length", None),
        ("get", "/api/tasks", None),
        ("get", "/api/tasks?limit=0", None),
        ("get", f"/api/task/info/{sid}.a", None),
        ("get", "/api/task/info/nodot", None),
        ("get", "/api/task/types", None),
        ("post", f"/api/task/revoke/{sid}.c?terminate=maybe", None),
        ("post", f"/api/task/revoke/{sid}.c", None),
        ("post", f"/api/task/revoke/{sid}.a", None),
        ("post", f"/api/orchestrator/sessions/{sid}/cancel", None),
        ("patch", f"/api/orchestrator/sessions/{sid}/context", {"k": 1}),
        ("get", "/metrics", None),
        ("get", "/healthz", None),
        ("get", "/healthcheck", None),
        ("get", "/", None),
        ("get", f"/sessions/{sid}", None),
        ("get", "/sessions/orch-missing", None),
        ("get", "/agents", None),
        ("get", f"/agents/{AGENT}", None),
        ("get", "/agents/nobody", None),
        ("get", "/queues", None),
        ("get", "/workers", None),
        ("get", "/experiments", None),
        (
            "post",
            "/api/orchestrator/experiments",
            {"name": "ab", "variants": [{"name": "a"}, {"name": "b"}]},
        ),
        ("get", "/experiments", None),
        ("get", "/experiments/ab", None),
        ("get", "/experiments/nope", None),
        ("get", "/dashboard/static/dashboard.css", None),
        ("get", "/dashboard/static/../app.py", None),
        ("get", "/static/dashboard.js", None),
        ("get", "/openapi.json", None),
        ("get", "/docs", None),
    ]
    statuses = {submitted.status_code}
    for method, url, payload in calls:
        kwargs = {"json": payload} if payload is not None else {}
        response = getattr(client, method)(url, **kwargs)
        statuses.add(response.status_code)
        check_response(doc, method, url, response)
    # the calls reached success and error answers alike
    assert {200, 201, 202, 404, 409, 422} <= statuses
    autoscaler = client.get("/api/orchestrator/autoscaler").get_json()
    assert autoscaler["enabled"] is True and autoscaler["agents"][0]["backlog"] == 5


def test_the_healthz_503_is_documented_with_its_own_shape(doc):
    declared = doc["paths"]["/healthz"]["get"]["responses"]["503"]["content"]
    assert declared["application/json"]["schema"] == {"$ref": "#/components/schemas/Health"}
    assert Health.model_validate({"status": "unavailable", "redis": "ConnectionError: x"})


# --- the docs page ----------------------------------------------------------------------------


def test_the_docs_page_lists_every_operation_and_links_the_document(env, doc):
    _, client, *_ = env
    response = client.get("/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert 'href="/openapi.json"' in page
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert f'id="{op["operationId"]}"' in page, (method, path)
            block = page.split(f'id="{op["operationId"]}"', 1)[1].split('class="op"', 1)[0]
            assert f">{method.upper()}<" in block and f">{path}<" in block
            assert op["summary"].replace("'", "&#39;") in block
            for parameter in op.get("parameters", []):
                assert f"<code>{parameter['name']}</code>" in block
            for status in op["responses"]:
                assert f"<td>{status}</td>" in block, (path, status)
    assert "<code>OrchestrateRequest</code>" in page and "<code>AgentUpdate</code>" in page
    for tag in doc["tags"]:
        assert f'id="tag-{tag["name"]}"' in page
    # self-contained: no scripts, no external assets
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_the_docs_page_escapes_text(env):
    app, client, *_ = env
    hostile = Operation(
        "get",
        "/x/<name>",
        "x.y",
        "<script>alert('summary')</script>",
        "docs",
        {200: ok({"type": "object"}, '<img src=x onerror="alert(1)">')},
        auth=False,
    )
    hostile_reply = Operation(
        "post", "/z", "z.z", "z & <b>", "docs", {201: Reply("<i>made</i>")}, auth=False
    )
    app.extensions["meowstik_openapi"] = build_document((hostile, hostile_reply))
    page = client.get("/docs").get_data(as_text=True)
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&#39;summary&#39;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page
    assert "z &amp; &lt;b&gt;" in page and "&lt;i&gt;made&lt;/i&gt;" in page
