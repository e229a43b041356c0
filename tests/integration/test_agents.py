"""Issue 3 on real Redis and real workers: load limits, waiting for capacity, offline detection,
fallback agents, HTTP and LLM agents registered over REST, and the statistics."""

import uuid

import pytest
import redis
import requests

from orchestrator.store.keys import Keys
from tests.support.cluster import wait_for
from tests.support.http_servers import JsonServer, echo_agent_endpoint
from tests.support.plans import step
from tests.support.spec import SPEC_CUSTOM_AGENT_BODY

pytestmark = pytest.mark.integration


def max_overlap(intervals):
    """The largest number of [start, end) intervals running at one instant."""
    events = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals],
        key=lambda event: (event[0], event[1]),
    )
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def test_fifty_concurrent_steps_never_run_more_than_max_load_at_once(cluster):
    # Given pair-001 (maxLoad 2) executed by two workers with 6 processes between them
    cluster.start_worker("pair-a", concurrency=3, agents="pair-001")
    cluster.start_worker("pair-b", concurrency=3, agents="pair-001")
    cluster.wait_ready({"pair-001"})
    # When 50 independent steps need it
    plan = {"steps": [step(f"p{i}", "pair_work", workS=0.05) for i in range(50)]}
    done = cluster.wait_session(
        cluster.submit({"goal": "load", "plan": plan})["sessionId"], timeout_s=120
    )
    assert done["status"] == "completed", done["errors"]
    # Then, by the agent's own clock, never more than 2 ran at once (and 2 did)
    intervals = [(r["startedAt"], r["endedAt"]) for r in done["results"].values()]
    assert len(intervals) == 50
    assert max_overlap(intervals) == 2
    assert {r["pid"] for r in done["results"].values()}.__len__() >= 2
    # and its load is back to 0
    assert cluster.agents()["pair-001"]["currentLoad"] == 0


def test_a_step_whose_agents_are_all_full_waits_without_a_message_then_runs(cluster):
    client = redis.Redis.from_url(cluster.redis_url)
    gate = uuid.uuid4().hex
    # Given solo-001 (maxLoad 1) busy with a gated step
    first = cluster.submit(
        {"goal": "hold", "plan": {"steps": [step("S1", "solo_work", gate=gate)]}}
    )
    wait_for(
        lambda: cluster.session(first["sessionId"])["steps"]["S1"]["status"] == "running",
        30,
        what="S1 running",
    )
    try:
        # When another step needs it
        second = cluster.submit({"goal": "wait", "plan": {"steps": [step("S2", "solo_work")]}})
        sid = second["sessionId"]
        waiting = cluster.session(sid)["steps"]["S2"]
        # Then it waits for capacity in Redis, holding no broker message and no worker
        assert waiting["status"] == "queued" and waiting["waitingFor"] == "capacity"
        broker = Keys()  # the cluster's queues, under the default key prefix
        assert client.llen(broker.broker("agent.solo-001")) == 0
        assert client.llen(broker.broker("cap.solo_work")) == 0
        assert cluster.agents()["solo-001"]["currentLoad"] == 1
        assert any(e["message"] == "Step waiting for capacity" for e in cluster.logs(sid))
    finally:
        client.lpush(f"test:gate:{gate}", "open")
    # and runs as soon as the slot frees
    done = cluster.wait_session(sid)
    assert done["status"] == "completed" and done["steps"]["S2"]["agentId"] == "solo-001"
    assert not [e for e in cluster.logs(sid) if e["message"] == "Delivery not run"]
    assert cluster.wait_session(first["sessionId"])["status"] == "completed"


def test_a_primary_agent_that_always_fails_is_replaced_by_a_fallback(cluster):
    # Given primary-001 (priority 10, always fails) and secondary-001 (priority 1)
    done = cluster.wait_session(
        cluster.submit({"goal": "fallback", "plan": {"steps": [step("F", "fallback_work")]}})[
            "sessionId"
        ]
    )
    # Then the step completes on the fallback
    assert done["status"] == "completed", done["errors"]
    assert done["steps"]["F"]["agentId"] == "secondary-001"
    assert done["steps"]["F"]["failedAgents"] == ["primary-001"]
    assert done["results"][f"{done['sessionId']}.F"]["agentId"] == "secondary-001"
    # and the logs say so, naming both agents
    fallbacks = [e for e in cluster.logs(done["sessionId"]) if "falling back" in e["message"]]
    assert fallbacks and fallbacks[0]["data"] == {
        "fromAgent": "primary-001",
        "toAgent": "secondary-001",
        "failedAgents": ["primary-001"],
    }


def test_a_killed_worker_frees_its_agents_load_and_they_go_offline(cluster):
    client = redis.Redis.from_url(cluster.redis_url)
    gate = uuid.uuid4().hex
    cluster.start_worker("victim", concurrency=2, agents="victim-001")
    cluster.wait_ready({"victim-001"})
    sid = cluster.submit(
        {"goal": "victim", "plan": {"steps": [step("V", "victim_work", gate=gate)]}}
    )["sessionId"]
    wait_for(
        lambda: cluster.session(sid)["steps"]["V"]["status"] == "running", 30, what="V running"
    )
    assert cluster.agents()["victim-001"]["currentLoad"] == 1
    # When the whole worker (main process and pool) is SIGKILLed
    cluster.kill("victim")
    # Then within the heartbeat timeout (3 s here) the agent is offline with no load
    agent = wait_for(
        lambda: (
            (a := cluster.agents()["victim-001"])["status"] == "offline"
            and a["currentLoad"] == 0
            and a
        ),
        10,
        what="victim-001 offline with load 0",
    )
    assert agent["status"] == "offline"
    client.lpush(f"test:gate:{gate}", "open")


def test_an_http_agent_registered_over_the_api_serves_a_step(cluster):
    with JsonServer(echo_agent_endpoint) as endpoint:
        body = {
            "id": "http-echo-001",
            "name": "HTTP Echo",
            "type": "specialist",
            "description": "Answers over HTTP",
            "capabilities": [{"name": "http_echo", "description": "echo over HTTP"}],
            "priority": 5,
            "maxLoad": 3,
            "endpoint": f"{endpoint.url}/step",
        }
        created = requests.post(f"{cluster.api_url}/api/orchestrator/agents", json=body, timeout=10)
        assert created.status_code == 201, created.text
        assert created.json()["executor"] == "http"
        wait_for(lambda: cluster.agents()["http-echo-001"]["status"] == "active", 10, what="active")
        plan = {"steps": [step("E1", "echo_work"), step("H", "http_echo", "E1")]}
        done = cluster.wait_session(
            cluster.submit({"goal": "over http", "plan": plan})["sessionId"]
        )
        assert done["status"] == "completed", done["errors"]
        output = done["results"][f"{done['sessionId']}.H"]
        assert output == {
            "handledBy": "http-endpoint",
            "stepId": "H",
            "goal": "over http",
            "dependencies": ["E1"],
        }
        path, sent = endpoint.requests[-1]
        assert path == "/step" and sent["sessionId"] == done["sessionId"]
        assert sent["dependencies"]["E1"]["stepId"] == "E1"
        # and what it reported spending is counted with the session, exactly
        cost = done["steps"]["H"]["cost"]
        assert (cost["usd"], cost["promptTokens"], cost["agentReports"]) == ("0.0025", 120, 1)
        assert done["cost"]["byModel"]["its-own-model"]["completionTokens"] == 30
        assert done["cost"]["byAgent"]["http-echo-001"]["usd"] == "0.0025"


def test_the_spec_custom_agent_body_registers_an_llm_agent_that_serves_a_step(cluster, fake_llm):
    spec_body = SPEC_CUSTOM_AGENT_BODY
    created = requests.post(
        f"{cluster.api_url}/api/orchestrator/agents", json=spec_body, timeout=10
    )
    assert created.status_code == 201, created.text
    assert created.json()["executor"] == "llm"
    again = requests.post(f"{cluster.api_url}/api/orchestrator/agents", json=spec_body, timeout=10)
    assert again.status_code == 409
    wait_for(lambda: cluster.agents()["custom-agent-001"]["status"] == "active", 10, what="active")
    plan = {"steps": [step("C", "custom_capability")]}
    done = cluster.wait_session(cluster.submit({"goal": "custom", "plan": plan})["sessionId"])
    assert done["status"] == "completed", done["errors"]
    assert done["results"][f"{done['sessionId']}.C"] == {
        "answeredBy": "test-model",
        "stepId": "C",
        "capabilities": ["custom_capability"],
    }
    assert any(path.endswith("/chat/completions") for path, _ in fake_llm.requests)


def test_stats_equal_what_the_agent_list_implies(cluster):
    agents = list(cluster.agents().values())
    stats = requests.get(f"{cluster.api_url}/api/orchestrator/stats", timeout=10).json()
    active = [a for a in agents if a["status"] == "active"]
    by_type = {}
    for agent in agents:
        by_type[agent["type"]] = by_type.get(agent["type"], 0) + 1
    assert stats == {
        "totalAgents": len(agents),
        "activeAgents": len(active),
        "busyAgents": sum(1 for a in agents if a["currentLoad"] > 0),
        "totalCapacity": sum(a["maxLoad"] for a in active),
        "usedCapacity": sum(a["currentLoad"] for a in agents),
        "agentsByType": by_type,
    }
    assert stats["totalAgents"] >= 11 and stats["activeAgents"] >= 11
