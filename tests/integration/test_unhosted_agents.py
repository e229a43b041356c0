"""Issue 18 on real Redis and real workers, with no LLM configured: the spec's custom-agent body
registers (201) and is listed unhosted; a step needing its capability waits for an agent,
holding nothing, until a `meowstik worker` whose agent modules define `custom-agent-001` starts
and runs it; with a short MEOWSTIK_SCHEDULE_TIMEOUT_S and nobody hosting it, the step fails with
the schedule-timeout message instead."""

from __future__ import annotations

import os
import textwrap

import pytest
import redis
import requests

from orchestrator.store.keys import Keys
from tests.support.cluster import REPO_ROOT, TEST_AGENT_MODULE, Cluster, wait_for
from tests.support.plans import step
from tests.support.spec import SPEC_CUSTOM_AGENT_BODY

pytestmark = pytest.mark.integration

CUSTOM = "custom-agent-001"
CUSTOM_MODULE = "custom_agents_issue18"
CUSTOM_AGENT_SOURCE = f'''
from workers.agents.base import agent


@agent(id="{CUSTOM}", name="Custom Agent", type="specialist",
       capabilities=["custom_capability"], max_load=2)
def custom(step_input):
    """The spec's custom agent, hosted by a worker."""
    return {{"hostedBy": "python", "stepId": step_input.step_id, "agentId": step_input.agent_id}}
'''


def start_cluster(redis_url: str, log_dir, **env: str) -> Cluster:
    """The API and a `meowstik worker --remote` without an LLM; agent modules include one in a
    temp dir that defines custom-agent-001 (no worker hosts it yet)."""
    module_dir = log_dir / "modules"
    module_dir.mkdir()
    (module_dir / f"{CUSTOM_MODULE}.py").write_text(textwrap.dedent(CUSTOM_AGENT_SOURCE))
    redis.Redis.from_url(redis_url).flushall()
    cluster = Cluster(
        redis_url,
        log_dir,
        {
            "MEOWSTIK_PLANNER": "rule",
            "MEOWSTIK_AGENT_MODULES": f"{TEST_AGENT_MODULE},{CUSTOM_MODULE}",
            "PYTHONPATH": os.pathsep.join([str(module_dir), str(REPO_ROOT)]),
            **env,
        },
    )
    assert "MEOWSTIK_LLM_BASE_URL" not in cluster.env
    cluster.start_worker("remote", concurrency=2, remote=True)
    cluster.start_api()
    wait_for(lambda: ready(cluster), 60, interval_s=0.1, what="the API and the remote worker")
    return cluster


def remote_heartbeat(cluster: Cluster) -> str | None:
    """The last heartbeat of the live remote worker, or None while there is none."""
    cluster.check_alive()
    try:
        workers = requests.get(f"{cluster.api_url}/api/workers", timeout=2).json()
    except (requests.RequestException, ValueError):
        return None
    beats = [w["lastHeartbeat"] for w in workers.values() if w.get("remote") and w.get("alive")]
    return beats[0] if beats else None


def ready(cluster: Cluster) -> bool:
    return remote_heartbeat(cluster) is not None


@pytest.fixture
def bare(redis_server, tmp_path):
    cluster = start_cluster(redis_server.url, tmp_path)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def impatient(redis_server, tmp_path):
    cluster = start_cluster(redis_server.url, tmp_path, MEOWSTIK_SCHEDULE_TIMEOUT_S="2")
    try:
        yield cluster
    finally:
        cluster.stop()


def register_spec_agent(cluster: Cluster) -> dict:
    created = requests.post(
        f"{cluster.api_url}/api/orchestrator/agents", json=SPEC_CUSTOM_AGENT_BODY, timeout=10
    )
    assert created.status_code == 201, created.text
    return created.json()


def test_a_registered_agent_nobody_hosts_waits_until_a_worker_hosting_its_id_runs_it(bare):
    # Given the spec's custom agent registered over HTTP on a cluster without an LLM
    created = register_spec_agent(bare)
    assert created["status"] == "unhosted" and created["executor"] == "llm"
    # and the remote worker (no LLM) heartbeating again since: it does not make it alive
    before = remote_heartbeat(bare)
    wait_for(lambda: remote_heartbeat(bare) not in (None, before), 10, what="a remote heartbeat")
    listed = bare.agents()[CUSTOM]
    assert listed["status"] == "unhosted" and "MEOWSTIK_LLM_BASE_URL" in listed["waitingFor"]
    # When a plan needs its capability
    sid = bare.submit({"goal": "custom", "plan": {"steps": [step("C", "custom_capability")]}})[
        "sessionId"
    ]
    # Then the step waits for an agent, with a schedule deadline, and no message is queued
    waiting = bare.session(sid)["steps"]["C"]
    assert waiting["status"] == "queued" and waiting["waitingFor"] == "agent"
    assert waiting["scheduleDeadline"] and waiting.get("agentId") is None
    client = redis.Redis.from_url(bare.redis_url)
    broker = Keys()  # the cluster's queues, under the default key prefix
    assert client.llen(broker.broker(f"agent.{CUSTOM}")) == 0
    assert client.llen(broker.broker("executor.remote")) == 0
    assert any(e["message"] == "Step waiting for an agent" for e in bare.logs(sid))
    # When a worker whose agent modules define custom-agent-001 starts hosting it
    bare.start_worker("custom", concurrency=2, agents=CUSTOM)
    # Then the step runs there and the session completes
    done = bare.wait_session(sid, timeout_s=60)
    assert done["status"] == "completed", done["errors"]
    assert done["steps"]["C"]["agentId"] == CUSTOM and done["steps"]["C"]["queue"] == (
        f"agent.{CUSTOM}"
    )
    assert done["results"][f"{sid}.C"] == {"hostedBy": "python", "stepId": "C", "agentId": CUSTOM}
    # and the agent is the worker's Python agent now, active
    agent = bare.agents()[CUSTOM]
    assert agent["status"] == "active" and agent["executor"] == "python"
    assert agent.get("waitingFor") is None


def test_a_step_nobody_hosts_fails_after_the_schedule_timeout_saying_how_to_fix_it(impatient):
    # Given the spec's custom agent, unhosted, and MEOWSTIK_SCHEDULE_TIMEOUT_S=2
    assert register_spec_agent(impatient)["status"] == "unhosted"
    # When a plan needs its capability and nobody comes to run it
    sid = impatient.submit({"goal": "custom", "plan": {"steps": [step("C", "custom_capability")]}})[
        "sessionId"
    ]
    # Then the reconciler of the running worker fails it after the timeout
    done = impatient.wait_session(sid, timeout_s=30)
    assert done["status"] == "failed" and done["steps"]["C"]["status"] == "failed"
    error = done["errors"][-1]
    assert error["errorType"] == "ScheduleTimeout"
    for needed in (
        "custom_capability",
        f"{CUSTOM} (unhosted)",
        "within 2 s",
        "MEOWSTIK_SCHEDULE_TIMEOUT_S",
        f"meowstik worker --agents {CUSTOM}",
        "MEOWSTIK_LLM_BASE_URL",
    ):
        assert needed in error["message"], needed
    assert any(e["message"] == "Step schedule timed out" for e in impatient.logs(sid))
    # and nothing of its waiting is left behind
    client, keys = redis.Redis.from_url(impatient.redis_url), Keys()
    assert client.zcard(keys.schedule_deadlines) == 0
    assert client.llen(keys.waiting("custom_capability")) == 0
