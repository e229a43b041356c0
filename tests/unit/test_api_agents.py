"""The registry over REST: registration rules, PATCH (drain), DELETE, errors."""

import pytest

from api import create_app
from orchestrator.core.fleet import DEFAULT_AGENTS
from orchestrator.settings import Settings
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.keys import Keys
from tests.support.recording import RecordingDispatcher
from tests.support.spec import SPEC_CUSTOM_AGENT_BODY


def client_for(fake_redis, **settings):
    registry = AgentRegistry(fake_redis, Keys("meowstik"))
    for agent in DEFAULT_AGENTS:
        registry.register(agent, worker="w1", now_ms=0, alive_ms=10**13)
    app = create_app(
        Settings(**settings), redis_client=fake_redis, dispatcher=RecordingDispatcher()
    )
    return app.test_client()


def error_of(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()["error"]


def test_the_spec_body_without_an_llm_registers_an_unhosted_llm_agent_saying_what_it_waits_for(
    fake_redis,
):
    client = client_for(fake_redis)
    response = client.post("/api/orchestrator/agents", json=SPEC_CUSTOM_AGENT_BODY)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["executor"] == "llm" and body["status"] == "unhosted"
    assert "--agents custom-agent-001" in body["waitingFor"]
    assert "MEOWSTIK_LLM_BASE_URL" in body["waitingFor"]
    listed = client.get("/api/orchestrator/agents/custom-agent-001").get_json()
    assert listed["status"] == "unhosted" and listed["waitingFor"] == body["waitingFor"]


def test_the_spec_body_with_an_llm_registers_an_llm_agent(fake_redis):
    client = client_for(fake_redis, llm_base_url="http://127.0.0.1:9/v1")
    response = client.post("/api/orchestrator/agents", json=SPEC_CUSTOM_AGENT_BODY)
    assert response.status_code == 201
    body = response.get_json()
    assert body["executor"] == "llm" and body["queue"] == "executor.remote"
    assert body["status"] == "unhosted"  # no LLM-capable remote worker has heartbeated yet
    assert (
        error_of(client.post("/api/orchestrator/agents", json=SPEC_CUSTOM_AGENT_BODY), 409)["code"]
        == "agent_exists"
    )


@pytest.mark.parametrize(
    "change, code",
    [
        ({"endpoint": "http://example.com/hook"}, "endpoint_not_allowed"),
        ({"endpoint": "ftp://127.0.0.1/x"}, "endpoint_not_allowed"),
        ({"endpoint": "http://127.0.0.1:8080/x", "currentLoad": 2}, "agent_not_executable"),
        ({"executor": "python"}, "agent_not_executable"),
        ({"executor": "http"}, "agent_not_executable"),
        ({"status": "offline", "endpoint": "http://127.0.0.1:8080/x"}, "agent_not_executable"),
        ({"status": "unhosted"}, "agent_not_executable"),
    ],
)
def test_registrations_nothing_could_run_safely_are_refused(fake_redis, change, code):
    client = client_for(fake_redis)
    body = {**SPEC_CUSTOM_AGENT_BODY, **change}
    assert error_of(client.post("/api/orchestrator/agents", json=body), 422)["code"] == code
    assert "custom-agent-001" not in {
        a["id"] for a in client.get("/api/orchestrator/agents").get_json()["agents"]
    }


def test_an_http_agent_registers_and_can_be_drained_and_deleted(fake_redis):
    client = client_for(fake_redis)
    body = {**SPEC_CUSTOM_AGENT_BODY, "endpoint": "http://LOCALHOST:8080/step#frag"}
    created = client.post("/api/orchestrator/agents", json=body).get_json()
    assert created["executor"] == "http" and created["endpoint"] == "http://localhost:8080/step"
    drained = client.patch(
        "/api/orchestrator/agents/custom-agent-001", json={"status": "draining", "maxLoad": 5}
    )
    assert drained.status_code == 200 and drained.get_json()["maxLoad"] == 5
    stored = client.get("/api/orchestrator/agents/custom-agent-001").get_json()
    assert stored["maxLoad"] == 5
    error = error_of(
        client.patch("/api/orchestrator/agents/custom-agent-001", json={"status": "offline"}), 422
    )
    assert error["details"]["errors"][0]["location"] == "body.status"
    assert (
        error_of(
            client.patch("/api/orchestrator/agents/custom-agent-001", json={"currentLoad": 3}), 422
        )["code"]
        == "validation_error"
    )
    assert client.delete("/api/orchestrator/agents/custom-agent-001").get_json()["deleted"]
    assert (
        error_of(client.get("/api/orchestrator/agents/custom-agent-001"), 404)["code"]
        == "agent_not_found"
    )
    assert error_of(client.delete("/api/orchestrator/agents/custom-agent-001"), 404)


def test_draining_a_hosted_agent_survives_its_worker_re_registering(fake_redis):
    client = client_for(fake_redis)
    client.patch("/api/orchestrator/agents/coder-001", json={"status": "draining"})
    AgentRegistry(fake_redis, Keys("meowstik")).register(
        DEFAULT_AGENTS[2], worker="w2", now_ms=1, alive_ms=10**13
    )
    assert client.get("/api/orchestrator/agents/coder-001").get_json()["status"] == "draining"
