"""Issue 4's durability lines on real Redis and real worker processes."""

import time
import uuid

import psutil
import pytest
import redis
import requests

from tests.support.cluster import wait_for
from tests.support.plans import step

pytestmark = pytest.mark.integration


def owner_of(cluster, pid):
    """The cluster process name whose process tree contains ``pid``."""
    ancestors = {p.pid for p in psutil.Process(pid).parents()} | {pid}
    return next(name for name, proc in cluster.processes.items() if proc.pid in ancestors)


def test_a_step_whose_whole_worker_is_killed_runs_again_within_30_s(cluster):
    # Given victim-001 executed by two workers, and a step running on one of them
    cluster.start_worker("durable-a", concurrency=2, agents="victim-001")
    cluster.start_worker("durable-b", concurrency=2, agents="victim-001")
    cluster.wait_ready({"victim-001"})
    client = redis.Redis.from_url(cluster.redis_url)
    gate = uuid.uuid4().hex
    plan = {"steps": [step("K", "victim_work", gate=gate), step("E", "echo_work", "K")]}
    sid = cluster.submit({"goal": "kill the worker", "plan": plan})["sessionId"]
    first_pid = int(wait_for(lambda: client.lindex(f"test:pids:{gate}", 0), 30, what="K started"))
    # When that whole worker (main process and pool) is SIGKILLed
    killed = owner_of(cluster, first_pid)
    cluster.kill(killed)
    killed_at = time.monotonic()
    # Then the step starts again on the surviving worker within 30 s
    second_pid = int(wait_for(lambda: client.lindex(f"test:pids:{gate}", 1), 30, what="K rerun"))
    assert time.monotonic() - killed_at < 30
    assert owner_of(cluster, second_pid) == ({"durable-a", "durable-b"} - {killed}).pop()
    client.lpush(f"test:gate:{gate}", "open")
    # and the session completes with one result per step
    done = cluster.wait_session(sid)
    assert done["status"] == "completed", done["errors"]
    assert set(done["results"]) == set(done["jobIds"]) and done["completedTasks"] == 2
    assert done["steps"]["K"]["attempts"] == 2
    recovered = [e for e in cluster.logs(sid) if e["message"].startswith("Step recovered")]
    assert recovered and recovered[0]["taskId"] == "K"


def test_the_api_restarted_mid_session_loses_nothing(cluster):
    client = redis.Redis.from_url(cluster.redis_url)
    gate = uuid.uuid4().hex
    plan = {"steps": [step("G", "gated_work", gate=gate), step("E", "echo_work", "G")]}
    sid = cluster.submit({"goal": "restart the api", "plan": plan})["sessionId"]
    wait_for(lambda: cluster.session(sid)["steps"]["G"]["status"] == "running", 30, what="G")
    logs_before = cluster.logs(sid)
    # When the API process is killed and started again
    cluster.kill("api")
    cluster.start_api()
    wait_for(lambda: _healthy(cluster), 30, what="API back")
    # Then the session is still served, and finishes
    assert cluster.session(sid)["steps"]["G"]["status"] == "running"
    assert cluster.logs(sid)[: len(logs_before)] == logs_before  # the log outlives the API
    client.lpush(f"test:gate:{gate}", "open")
    done = cluster.wait_session(sid)
    assert done["status"] == "completed" and set(done["results"]) == set(done["jobIds"])
    stats = requests.get(f"{cluster.api_url}/api/orchestrator/sessions/{sid}/stats", timeout=10)
    assert stats.json()["stepDurations"]["count"] == 2


def _healthy(cluster) -> bool:
    try:
        return requests.get(f"{cluster.api_url}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False
