"""The REST contract through Flask's test client, on fakeredis with a recording dispatcher."""

import json

import fakeredis
import pytest

from api import create_app
from orchestrator.core.fleet import DEFAULT_AGENTS
from orchestrator.settings import Settings
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.keys import Keys
from tests.support.recording import RecordingDispatcher
from tests.support.spec import SPEC_ORCHESTRATE_BODY


@pytest.fixture
def setup(fake_redis):
    settings = Settings(max_body_bytes=4096, max_goal_chars=500)
    registry = AgentRegistry(fake_redis, Keys(settings.key_prefix))
    for agent in DEFAULT_AGENTS:
        registry.register(agent, worker="w1", now_ms=0, alive_ms=10**13)
    dispatcher = RecordingDispatcher()
    app = create_app(settings, redis_client=fake_redis, dispatcher=dispatcher)
    return app.test_client(), dispatcher, fake_redis


def post(client, body, **kwargs):
    return client.post("/api/orchestrator/orchestrate", json=body, **kwargs)


def assert_json_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]
    return error


def test_the_spec_request_starts_a_session_with_the_spec_shape(setup):
    client, dispatcher, _ = setup
    response = post(client, SPEC_ORCHESTRATE_BODY)
    assert response.status_code == 202
    body = response.get_json()
    assert body["sessionId"].startswith("orch-") and body["status"] == "executing"
    assert body["plan"]["goal"] == SPEC_ORCHESTRATE_BODY["goal"] and body["totalTasks"] == 5
    assert body["plan"]["steps"][0]["requiredCapabilities"] == ["web_research"]
    assert len(body["jobIds"]) == 5 and body["completedTasks"] == 0
    assert body["results"] == {} and body["errors"] == [] and body["startTime"].endswith("Z")
    assert body["userId"] == "user-123" and body["metadata"] == {"priority": "high"}
    assert dispatcher.step_ids == [body["plan"]["steps"][0]["id"]]
    fetched = client.get(f"/api/orchestrator/sessions/{body['sessionId']}").get_json()
    assert fetched["jobIds"] == body["jobIds"]


def test_a_budget_is_kept_exactly_and_shown_on_the_snapshot(setup):
    client, _, _ = setup
    body = post(client, {"goal": "g", "budget": {"maxCostUsd": 0.1, "maxTokens": 5000}})
    assert body.status_code == 202
    budget = body.get_json()["budget"]
    assert budget == {
        "maxCostUsd": "0.1",
        "maxTokens": 5000,
        "spentUsd": "0",
        "spentTokens": 0,
        "paused": False,
    }  # no pending question: omitted, like every null of the snapshot
    sid = body.get_json()["sessionId"]
    patched = client.patch(f"/api/orchestrator/sessions/{sid}/budget", json={"maxTokens": 9})
    assert patched.status_code == 200
    assert patched.get_json()["budget"]["maxTokens"] == 9
    assert patched.get_json()["budget"]["maxCostUsd"] == "0.1"


def test_an_explicit_plan_is_used_as_given(setup):
    client, dispatcher, _ = setup
    plan = {
        "steps": [
            {"id": "s1", "title": "one", "requiredCapabilities": ["web_research"]},
            {
                "id": "s2",
                "title": "two",
                "requiredCapabilities": ["code_generation"],
                "dependsOn": ["s1"],
            },
        ]
    }
    body = post(client, {"goal": "g", "plan": plan}).get_json()
    assert [s["id"] for s in body["plan"]["steps"]] == ["s1", "s2"]
    assert (
        body["steps"]["s2"]["status"] == "pending"
        and body["steps"]["s2"]["queue"] == "cap.code_generation"
    )
    assert body["plan"]["parallelizable"] is False


def test_a_dependency_cycle_is_a_422_naming_the_steps(setup):
    client, dispatcher, redis_client = setup
    before = set(redis_client.keys())
    plan = {
        "steps": [
            {"id": "x", "title": "x", "requiredCapabilities": ["web_research"], "dependsOn": ["y"]},
            {"id": "y", "title": "y", "requiredCapabilities": ["web_research"], "dependsOn": ["x"]},
        ]
    }
    error = assert_json_error(post(client, {"goal": "g", "plan": plan}), 422, "dependency_cycle")
    assert set(error["details"]["cycle"]) == {"x", "y"}
    assert set(redis_client.keys()) == before and dispatcher.sent == []


def test_unknown_dependencies_duplicates_and_unroutable_steps_are_422(setup):
    client, _, _ = setup
    unknown = {
        "steps": [
            {
                "id": "x",
                "title": "x",
                "requiredCapabilities": ["web_research"],
                "dependsOn": ["ghost"],
            }
        ]
    }
    error = assert_json_error(
        post(client, {"goal": "g", "plan": unknown}), 422, "unknown_dependency"
    )
    assert error["details"]["missing"] == {"x": ["ghost"]}
    dup = {"steps": [{"id": "x", "title": "x", "requiredCapabilities": ["web_research"]}] * 2}
    assert_json_error(post(client, {"goal": "g", "plan": dup}), 422, "duplicate_step_id")
    unroutable = {"steps": [{"id": "x", "title": "x", "requiredCapabilities": ["time_travel"]}]}
    error = assert_json_error(
        post(client, {"goal": "g", "plan": unroutable}), 422, "unroutable_step"
    )
    assert error["details"]["steps"] == {"x": ["time_travel"]}


@pytest.mark.parametrize(
    "body, location",
    [
        ({}, "body.goal"),
        ({"goal": ""}, "body.goal"),
        ({"goal": 42}, "body.goal"),
        ({"goal": "g", "initialContext": []}, "body.initialContext"),
        (
            {
                "goal": "g",
                "plan": {
                    "steps": [
                        {"id": "bad id!", "title": "t", "requiredCapabilities": ["web_research"]}
                    ]
                },
            },
            "body.plan.steps.0.id",
        ),
        (
            {
                "goal": "g",
                "plan": {
                    "steps": [{"id": "s", "title": "t", "requiredCapabilities": ["Not A Cap"]}]
                },
            },
            "body.plan.steps.0.requiredCapabilities.0",
        ),
        ({"goal": "g", "unexpected": 1}, "body.unexpected"),
        ({"goal": "g", "budget": {}}, "body.budget"),
        ({"goal": "g", "budget": {"maxCostUsd": 0}}, "body.budget.maxCostUsd"),
        ({"goal": "g", "budget": {"maxCostUsd": "a lot"}}, "body.budget.maxCostUsd"),
        ({"goal": "g", "budget": {"maxTokens": 1.5}}, "body.budget.maxTokens"),
        ({"goal": "g", "budget": {"maxTokens": 10, "currency": "EUR"}}, "body.budget.currency"),
        ({"goal": "g", "budget": 5}, "body.budget"),
    ],
)
def test_wrong_fields_are_a_422_that_says_where(setup, body, location):
    client, _, _ = setup
    error = assert_json_error(post(client, body), 422, "validation_error")
    assert location in [e["location"] for e in error["details"]["errors"]]


@pytest.mark.parametrize(
    "data, content_type, status, code",
    [
        ("{not json", "application/json", 400, "malformed_json"),
        ('{"goal": NaN}', "application/json", 400, "malformed_json"),
        ("[1, 2]", "application/json", 400, "malformed_json"),
        ("goal=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ('{"goal": "x"}', None, 415, "unsupported_media_type"),
        (
            '{"goal": "x", "initialContext": {"a": ' + "[" * 100 + "]" * 100 + "}}",
            "application/json",
            400,
            "too_deeply_nested",
        ),
        ("[" * 1500 + "]" * 1500, "application/json", 400, "malformed_json"),
    ],
)
def test_bodies_that_are_not_a_json_object_get_a_json_4xx(setup, data, content_type, status, code):
    client, _, _ = setup
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/api/orchestrator/orchestrate", data=data, headers=headers)
    assert_json_error(response, status, code)


def test_an_oversized_body_is_a_json_413(setup):
    client, _, _ = setup
    body = json.dumps({"goal": "x" * 10_000})
    response = client.post(
        "/api/orchestrator/orchestrate", data=body, headers={"Content-Type": "application/json"}
    )
    error = assert_json_error(response, 413, "payload_too_large")
    assert error["details"]["limitBytes"] == 4096


def test_a_goal_over_the_limit_is_a_422_naming_the_setting(setup):
    client, _, _ = setup
    error = assert_json_error(post(client, {"goal": "y" * 600}), 422, "limit_exceeded")
    assert error["details"]["setting"] == "MEOWSTIK_MAX_GOAL_CHARS"


def test_unknown_sessions_and_routes_are_json_404s(setup):
    client, _, _ = setup
    assert_json_error(client.get("/api/orchestrator/sessions/orch-nope"), 404, "session_not_found")
    assert_json_error(
        client.get("/api/orchestrator/sessions/orch-nope/logs"), 404, "session_not_found"
    )
    assert_json_error(client.get("/nowhere"), 404, "not_found")
    assert_json_error(client.delete("/api/orchestrator/orchestrate"), 405, "method_not_allowed")


def test_broker_down_at_submit_is_a_503_and_the_session_is_failed_not_hung(fake_redis):
    registry = AgentRegistry(fake_redis, Keys("meowstik"))
    for agent in DEFAULT_AGENTS:
        registry.register(agent, worker="w1", now_ms=0, alive_ms=10**13)
    app = create_app(Settings(), redis_client=fake_redis, dispatcher=RecordingDispatcher(fail=True))
    client = app.test_client()
    error = assert_json_error(post(client, SPEC_ORCHESTRATE_BODY), 503, "broker_unavailable")
    session = client.get(f"/api/orchestrator/sessions/{error['details']['sessionId']}").get_json()
    assert session["status"] == "failed" and session["errors"][0]["errorType"] == "DispatchError"


def test_agents_and_stats_agree(setup):
    client, _, _ = setup
    agents = client.get("/api/orchestrator/agents").get_json()
    assert agents["count"] == 4
    assert {a["id"] for a in agents["agents"]} == {a.id for a in DEFAULT_AGENTS}
    planner = next(a for a in agents["agents"] if a["id"] == "planner-001")
    assert planner["capabilities"][0]["name"] == "task_decomposition" and planner["maxLoad"] == 5
    stats = client.get("/api/orchestrator/stats").get_json()
    assert stats == {
        "totalAgents": 4,
        "activeAgents": 4,
        "busyAgents": 0,
        "totalCapacity": sum(a["maxLoad"] for a in agents["agents"]),
        "usedCapacity": 0,
        "agentsByType": {"coder": 1, "planner": 1, "researcher": 1, "reviewer": 1},
    }


def test_healthz_reports_redis(setup):
    client, _, _ = setup
    assert client.get("/healthz").get_json() == {"status": "ok", "redis": "ok"}


def test_healthz_answers_503_naming_the_redis_error_while_redis_is_down():
    server = fakeredis.FakeServer()
    server.connected = False
    down = fakeredis.FakeRedis(server=server)
    app = create_app(Settings(), redis_client=down, dispatcher=RecordingDispatcher())
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable" and body["redis"].startswith("ConnectionError: ")


def test_session_logs_record_creation(setup):
    client, _, _ = setup
    sid = post(client, SPEC_ORCHESTRATE_BODY).get_json()["sessionId"]
    logs = client.get(f"/api/orchestrator/sessions/{sid}/logs").get_json()
    assert logs["sessionId"] == sid
    assert logs["logs"][0]["message"].startswith("Session created") and logs["logs"][0][
        "id"
    ].startswith("log-")
