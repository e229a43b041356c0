"""The endpoint rules for HTTP agents (always-blocked ranges, CIDR allowlists, the address the
executor actually connects to) and the size limits added for hostile input, each a named
setting: subtasks per step, step parameters, context (initial, per update, merged), metadata."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from api import create_app
from orchestrator.core.errors import EndpointNotAllowedError
from orchestrator.core.fleet import DEFAULT_AGENTS
from orchestrator.core.models import AgentDefinition, AgentExecutor, Capability, PlanStep
from orchestrator.core.registration import blocked_range, check_agent_endpoint, literal_address
from orchestrator.core.steps import StepInput
from orchestrator.settings import Settings
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.keys import Keys
from tests.support.http_servers import JsonServer, echo_agent_endpoint
from tests.support.recording import RecordingDispatcher
from workers.executors import address_guard
from workers.executors import http_agent as http_agent_module
from workers.executors.http_agent import HttpAgent

NEW_LIMITS = {
    "max_subtasks_per_step": 100,
    "max_step_parameters_bytes": 64 * 1024,
    "max_context_bytes": 256 * 1024,
    "max_metadata_bytes": 16 * 1024,
    "max_metadata_depth": 8,
}

# --- endpoint rules (pure) ----------------------------------------------------------------------

BLOCKED = [
    ("http://169.254.169.254/latest/meta-data/", "169.254.0.0/16"),
    ("http://169.254.0.1:8080/", "169.254.0.0/16"),
    ("http://[::ffff:169.254.169.254]/", "169.254.0.0/16"),
    ("http://2852039166/", "169.254.0.0/16"),  # 169.254.169.254 as one number
    ("http://0xa9.0xfe.0xa9.0xfe/", "169.254.0.0/16"),
    ("http://169.254.43518/", "169.254.0.0/16"),
    ("http://[fe80::1]/", "fe80::/10"),
    ("http://[fe80::1%25eth0]/", "fe80::/10"),
    ("http://0.0.0.0/", "0.0.0.0/8"),
    ("http://0/", "0.0.0.0/8"),
    ("http://[::]/", "::/128"),
    ("http://224.0.0.251/", "224.0.0.0/4"),
    ("http://[ff02::1]/", "ff00::/8"),
    ("http://255.255.255.255/", "255.255.255.255/32"),
    ("https://[fd00:ec2::254]/", "fd00:ec2::254/128"),
]


@pytest.mark.parametrize("hosts", ["*", "127.0.0.1,localhost,::1", "0.0.0.0/0,::/0"])
@pytest.mark.parametrize("url, network", BLOCKED)
def test_always_blocked_ranges_are_refused_whatever_the_allowlist_says(url, network, hosts):
    with pytest.raises(EndpointNotAllowedError) as caught:
        check_agent_endpoint(url, Settings(http_agent_allowed_hosts=hosts))
    assert caught.value.details["rule"] == "blocked_range"
    assert caught.value.details["blockedRange"] == network
    assert network in caught.value.message and "always blocked" in caught.value.message


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/agent", "http://localhost:9/x", "http://[::1]:9/x"],
)
def test_loopback_stays_allowed_by_default(url):
    assert check_agent_endpoint(url, Settings()) == url


@pytest.mark.parametrize(
    "url, reason",
    [
        ("file:///etc/passwd", "scheme 'file'"),
        ("gopher://127.0.0.1:70/_", "scheme 'gopher'"),
        ("http://user:pw@127.0.0.1:9/", "credentials"),
        ("http://example.com/x", "not in the allowed hosts"),
    ],
)
def test_schemes_credentials_and_other_hosts_are_still_refused(url, reason):
    with pytest.raises(EndpointNotAllowedError, match=reason) as caught:
        check_agent_endpoint(url, Settings())
    assert "pw" not in caught.value.message


def test_cidr_entries_of_the_allowlist_match_ip_literals_only_inside_them():
    settings = Settings(http_agent_allowed_hosts="10.0.0.0/8,fd12::/16,localhost")
    assert check_agent_endpoint("http://10.1.2.3:8080/a", settings) == "http://10.1.2.3:8080/a"
    assert check_agent_endpoint("http://[fd12::5]/a", settings) == "http://[fd12::5]/a"
    for outside in ("http://11.0.0.1/", "http://[fd13::1]/", "http://agents.internal/"):
        with pytest.raises(EndpointNotAllowedError, match="not in the allowed hosts"):
            check_agent_endpoint(outside, settings)


@pytest.mark.parametrize(
    "host, address",
    [
        ("example.com", None),
        ("cafe", None),
        ("10.0.0.1", "10.0.0.1"),
        ("[::1]", "::1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("999.1.1.1", None),
    ],
)
def test_literal_addresses_include_the_legacy_ipv4_spellings_resolvers_accept(host, address):
    found = literal_address(host)
    assert (str(found) if found else None) == address


def test_only_the_blocked_ranges_are_blocked():
    for address in ("127.0.0.1", "10.0.0.1", "192.168.1.1", "8.8.8.8", "::1", "2001:db8::1"):
        assert blocked_range(address) is None
    assert blocked_range("::ffff:0.0.0.0") == ("0.0.0.0/8", "unspecified")


# --- the executor checks the address it connects to ---------------------------------------------

STEP_INPUT = StepInput(
    session_id="s",
    step_id="x",
    job_id="s.x",
    goal="g",
    step=PlanStep(id="x", title="x", required_capabilities=["summarise"]),
    agent_id="remote",
    attempt=1,
)


def http_agent(endpoint: str, **settings: Any) -> HttpAgent:
    definition = AgentDefinition(
        id="remote",
        name="Remote",
        type="remote",
        capabilities=[Capability(name="summarise")],
        executor=AgentExecutor.HTTP,
        endpoint=endpoint,
        timeout_s=5,
    )
    values = {"http_agent_max_retries": 0, **settings}
    return HttpAgent(definition, Settings(**values), sleep=lambda _s: None)


@pytest.fixture
def loopback_is_blocked(monkeypatch):
    """Treat 127.0.0.0/8 as an always-blocked range in the executor only: the one address a test
    can both resolve a name to and connect to, standing in for 169.254.169.254."""

    def blocked(address):
        if str(address).startswith("127."):
            return "127.0.0.0/8", "standing in for link-local"
        return blocked_range(address)

    monkeypatch.setattr(address_guard, "blocked_range", blocked)


def resolve_to(monkeypatch, name: str, address: str) -> None:
    """DNS for ``name`` answers ``address`` (as a rebinding resolver would, after registration)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return real(address if host == name else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_name_that_resolves_to_a_blocked_address_fails_the_step_before_anything_is_sent(
    monkeypatch, loopback_is_blocked
):
    with JsonServer(echo_agent_endpoint) as server:
        port = server.url.rsplit(":", 1)[1]
        resolve_to(monkeypatch, "agents.example", "127.0.0.1")
        agent = http_agent(
            f"http://agents.example:{port}/agent", http_agent_allowed_hosts="agents.example"
        )
        with pytest.raises(http_agent_module.PermanentStepError) as caught:
            agent.run(STEP_INPUT)
        assert server.requests == []
    error = caught.value
    assert "'agents.example' resolved to 127.0.0.1" in error.message
    assert "nothing was sent" in error.message
    assert error.details["rule"] == "blocked_range" and error.details["address"] == "127.0.0.1"


def test_the_same_name_resolving_to_an_allowed_address_is_called(monkeypatch):
    with JsonServer(echo_agent_endpoint) as server:
        port = server.url.rsplit(":", 1)[1]
        resolve_to(monkeypatch, "agents.example", "127.0.0.1")
        agent = http_agent(
            f"http://agents.example:{port}/agent", http_agent_allowed_hosts="agents.example"
        )
        result = agent.run(STEP_INPUT)
        assert len(server.requests) == 1
    assert result.output["handledBy"] == "http-endpoint"


def test_an_endpoint_registered_before_the_rules_is_refused_at_call_time():
    agent = http_agent("http://169.254.169.254/latest", http_agent_allowed_hosts="*")
    with pytest.raises(EndpointNotAllowedError, match="169.254.0.0/16"):
        agent.run(STEP_INPUT)


# --- the limits over the API (fakeredis) --------------------------------------------------------


def test_each_new_limit_is_a_described_setting_with_its_default():
    for name, default in NEW_LIMITS.items():
        field = Settings.model_fields[name]
        assert field.default == default and field.description


def client_for(fake_redis, **settings: Any):
    registry = AgentRegistry(fake_redis, Keys("meowstik"))
    for agent in DEFAULT_AGENTS:
        registry.register(agent, worker="w1", now_ms=0, alive_ms=10**13)
    app = create_app(
        Settings(**settings), redis_client=fake_redis, dispatcher=RecordingDispatcher()
    )
    return app.test_client()


def step(step_id: str, **extra: Any) -> dict:
    return {"id": step_id, "title": step_id, "requiredCapabilities": ["web_research"], **extra}


def error_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code, error
    return error


def test_subtasks_per_step_follow_the_setting(fake_redis):
    client = client_for(fake_redis, max_subtasks_per_step=2)
    at_limit = step("p", subtasks=[step("a"), step("b")])
    body = {"goal": "g", "plan": {"steps": [at_limit]}}
    assert client.post("/api/orchestrator/orchestrate", json=body).status_code == 202
    nested = step("q", subtasks=[step("c", subtasks=[step("d"), step("e"), step("f")])])
    error = error_of(
        client.post(
            "/api/orchestrator/orchestrate", json={"goal": "g", "plan": {"steps": [nested]}}
        ),
        422,
        "limit_exceeded",
    )
    assert error["details"]["location"] == "body.plan.steps.0.subtasks.0.subtasks"
    assert error["details"]["stepId"] == "c" and error["details"]["actual"] == 3
    assert "MEOWSTIK_MAX_SUBTASKS_PER_STEP" in error["message"]


def test_more_than_a_hundred_subtasks_pass_when_the_setting_allows_them(fake_redis):
    client = client_for(fake_redis, max_subtasks_per_step=150)
    parent = step("p", subtasks=[step(f"s{i}") for i in range(120)])
    body = {"goal": "g", "plan": {"steps": [parent]}}
    assert client.post("/api/orchestrator/orchestrate", json=body).status_code == 202


def test_step_parameters_follow_the_setting(fake_redis):
    client = client_for(fake_redis, max_step_parameters_bytes=100)
    fits = step("a", parameters={"p": "x" * 80})  # 88 bytes as compact JSON
    too_big = step("b", parameters={"p": "é" * 50})  # 50 characters, 108 bytes of UTF-8
    body = {"goal": "g", "plan": {"steps": [fits, too_big]}}
    error = error_of(client.post("/api/orchestrator/plans", json=body), 422, "limit_exceeded")
    assert error["details"]["location"] == "body.plan.steps.1.parameters"
    compact = json.dumps({"p": "é" * 50}, separators=(",", ":"), ensure_ascii=False)
    assert error["details"]["actual"] == len(compact.encode()) > 100 > len(compact)


def test_initial_context_and_request_metadata_follow_the_settings(fake_redis):
    client = client_for(fake_redis, max_context_bytes=50, max_metadata_bytes=40)
    post = client.post
    error = error_of(
        post(
            "/api/orchestrator/orchestrate", json={"goal": "g", "initialContext": {"a": "x" * 50}}
        ),
        422,
        "limit_exceeded",
    )
    assert error["details"]["location"] == "body.initialContext"
    error = error_of(
        post("/api/orchestrator/orchestrate", json={"goal": "g", "metadata": {"m": "y" * 40}}),
        422,
        "limit_exceeded",
    )
    assert error["details"]["location"] == "body.metadata"
    assert fake_redis.zcard("meowstik:sessions") == 0


def test_context_updates_are_bounded_alone_and_once_merged(fake_redis):
    client = client_for(fake_redis, max_context_bytes=60)
    sid = client.post("/api/orchestrator/orchestrate", json={"goal": "g"}).get_json()["sessionId"]
    path = f"/api/orchestrator/sessions/{sid}/context"
    error = error_of(client.patch(path, json={"a": "x" * 60}), 422, "limit_exceeded")
    assert "context update bytes" in error["message"]
    assert client.patch(path, json={"a": "x" * 30}).status_code == 200  # {"a":"xxx..."} 38 bytes
    error = error_of(client.patch(path, json={"b": "y" * 20}), 422, "limit_exceeded")
    merged = json.dumps({"a": "x" * 30, "b": "y" * 20}, separators=(",", ":"))
    assert "merged context bytes" in error["message"]
    assert error["details"]["actual"] == len(merged) > 60
    assert client.patch(path, json={"a": "z"}).status_code == 200  # replacing a key shrinks it
    shared = client.patch(path, json={"b": "y" * 20}).get_json()["sharedState"]
    assert shared == {"a": "z", "b": "y" * 20}


def agent_body(**change: Any) -> dict:
    return {
        "id": "remote-1",
        "name": "Remote",
        "type": "remote",
        "capabilities": [{"name": "web_research"}],
        "endpoint": "http://127.0.0.1:9/x",
        **change,
    }


def test_agent_metadata_is_bounded_in_bytes_and_depth(fake_redis):
    client = client_for(fake_redis, max_metadata_bytes=64, max_metadata_depth=3)
    post = client.post
    error = error_of(
        post("/api/orchestrator/agents", json=agent_body(metadata={"k": "v" * 64})),
        422,
        "limit_exceeded",
    )
    assert error["details"]["location"] == "body.metadata"
    error = error_of(
        post("/api/orchestrator/agents", json=agent_body(metadata={"a": {"b": {"c": {}}}})),
        422,
        "limit_exceeded",
    )
    assert "MEOWSTIK_MAX_METADATA_DEPTH" in error["message"] and error["details"]["actual"] == 4
    assert client.get("/api/orchestrator/agents/remote-1").status_code == 404
    ok = post("/api/orchestrator/agents", json=agent_body(metadata={"a": {"b": [1]}}))
    assert ok.status_code == 201, ok.get_data(as_text=True)


@pytest.mark.parametrize(
    "change, location",
    [({"currentLoad": 1}, "body.currentLoad"), ({"status": "offline"}, "body.status")],
)
def test_fields_the_orchestrator_manages_are_refused_naming_the_field(fake_redis, change, location):
    client = client_for(fake_redis)
    error = error_of(client.post("/api/orchestrator/agents", json=agent_body(**change)), 422,
                     "agent_not_executable")  # fmt: skip
    assert error["details"]["location"] == location and error["message"].startswith(location)
