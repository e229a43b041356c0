"""Issue 23: a Redis out of memory (noeviction) or refusing writes (MISCONF) while sessions run.

One real redis-server of this module's own (its maxmemory, dir and save settings are changed),
a worker hosting the echo agent and a file-gated one (tests/support/file_gate_agents.py: it
needs no Redis to wait), and the API. Each test leaves Redis accepting writes again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from cli.embedded_redis import EmbeddedRedis
from tests.conftest import require
from tests.support.cluster import Cluster, wait_for
from tests.support.file_gate_agents import OPEN_FILE, runs
from tests.support.plans import step
from tests.support.redis_memory import (
    accept_writes,
    fill_memory,
    free_memory,
    lift_memory_limit,
    out_of_memory,
    refuse_writes,
)
from tests.support.redis_server import free_port
from tests.support.tiny_disk import TinyDiskRedis, mount_unavailable

pytestmark = pytest.mark.integration
AGENTS = "echo-001,filegate-001"
PREFIX = "meowstik:"
# the lease outlives each outage here, so the run that finished during it is the one recorded
LEASE_S = "30"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[EmbeddedRedis]:
    running = EmbeddedRedis(tmp_path_factory.mktemp("redis-memory"), free_port())
    running.start()
    yield running
    running.stop()


def start_cluster(redis_url: str, log_dir: Path) -> Cluster:
    running = Cluster(
        redis_url,
        log_dir,
        {
            "MEOWSTIK_AGENT_MODULES": "tests.support.agents,tests.support.file_gate_agents",
            "MEOWSTIK_LEASE_S": LEASE_S,
            "MEOWSTIK_PLANNER": "rule",
        },
    )
    try:
        running.start_worker("memory", concurrency=3, agents=AGENTS)
        running.start_api()
        running.wait_ready(set(AGENTS.split(",")))
    except BaseException:
        running.stop()
        raise
    return running


@pytest.fixture(scope="module")
def cluster(server, tmp_path_factory) -> Iterator[Cluster]:
    running = start_cluster(server.url, tmp_path_factory.mktemp("memory-cluster"))
    yield running
    running.stop()


@pytest.fixture
def client(server) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(server.url)
    yield connection
    lift_memory_limit(connection)
    connection.close()


def snapshot(client: redis.Redis) -> dict[bytes, bytes | None]:
    """Every key under the prefix with its serialized value (DUMP): what changed, key by key."""
    return {key: client.dump(key) for key in client.scan_iter(match=f"{PREFIX}*", count=1000)}


def assert_nothing_written(before: dict, after: dict) -> None:
    added = sorted(set(after) - set(before))
    changed = sorted(key for key in set(after) & set(before) if after[key] != before[key])
    assert not added, f"keys written while Redis refused writes: {added}"
    assert not changed, f"keys changed while Redis refused writes: {changed}"


def post(cluster: Cluster, body: dict, key: str) -> requests.Response:
    return requests.post(
        f"{cluster.api_url}/api/orchestrator/orchestrate",
        json=body,
        headers={"Idempotency-Key": key},
        timeout=10,
    )


def assert_refused(response: requests.Response, code: str) -> dict:
    """A 503 in the API's error shape that tells the client to come back."""
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Retry-After"] == "5"
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code and error["details"]["retryable"] is True
    return error


def health(cluster: Cluster) -> requests.Response:
    return requests.get(f"{cluster.api_url}/healthz", timeout=5)


def gated_plan(gate: Path) -> dict:
    return {
        "goal": "finish while Redis refuses writes",
        "plan": {
            "steps": [step("F", "file_gated_work", gate=str(gate)), step("E", "echo_work", "F")]
        },
    }


def start_gated(cluster: Cluster, gate: Path) -> str:
    """A session whose first step is running, blocked on ``gate``."""
    gate.mkdir()
    sid = cluster.submit(gated_plan(gate))["sessionId"]
    wait_for(lambda: runs(gate), 30, what="the gated step to start")
    wait_for(lambda: cluster.session(sid)["steps"]["F"]["status"] == "running", 30, what="F")
    return sid


def worker_log(cluster: Cluster) -> list[dict]:
    lines = (cluster.log_dir / "memory.log").read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def logged(cluster: Cluster, message: str) -> int:
    """How many of the worker's log lines start with ``message``."""
    return sum(entry["message"].startswith(message) for entry in worker_log(cluster))


def retrying(code: str) -> str:
    return f"could not record the output ({code}); retrying"


HEARTBEAT_FAILED = "heartbeat failed"
BRPOP_REFUSED = "Redis refuses writes (store_not_writable): not taking messages"


def assert_recorded_once(cluster: Cluster, sid: str, gate: Path) -> None:
    """Then the session completed with one result per step, its gated step ran once (the run
    that finished during the outage is the one recorded), and each step completed once."""
    done = cluster.wait_session(sid, timeout_s=60)
    assert done["status"] == "completed", done["errors"]
    assert set(done["results"]) == set(done["jobIds"]) and len(done["jobIds"]) == 2
    assert done["steps"]["F"]["attempts"] == 1 and len(runs(gate)) == 1
    completed = [e["taskId"] for e in cluster.logs(sid) if e["message"] == "Step completed"]
    assert sorted(completed) == ["E", "F"]


def test_a_submit_while_redis_is_out_of_memory_answers_503_and_writes_nothing(cluster, client):
    # Given Redis out of memory under noeviction, with the cluster's agents active
    cluster.wait_ready(set(AGENTS.split(",")))
    fill_memory(client)
    before = snapshot(client)
    key = uuid.uuid4().hex
    body = {"goal": "refused", "plan": {"steps": [step("A", "echo_work")]}}
    # When a client submits, with an Idempotency-Key
    response = post(cluster, body, key)
    # Then a retryable 503 says Redis is out of memory, and healthz says so too
    error = assert_refused(response, "store_out_of_memory")
    assert "maxmemory" in error["message"] and "nothing was recorded" in error["message"]
    checked = health(cluster)
    assert checked.status_code == 503
    assert [p["code"] for p in checked.json()["problems"]] == ["store_out_of_memory"]
    # and no key was written or changed: no session, no index entry, no log, no idempotency key
    assert out_of_memory(client)
    assert_nothing_written(before, snapshot(client))
    # When memory is freed, the client's retry with the same key submits, and it completes
    free_memory(client)
    assert health(cluster).status_code == 200
    cluster.wait_ready(set(AGENTS.split(",")))
    retry = post(cluster, body, key)
    assert retry.status_code == 202, retry.text
    done = cluster.wait_session(retry.json()["sessionId"])
    assert done["status"] == "completed" and list(done["results"]) == done["jobIds"]


def test_an_output_refused_for_lack_of_memory_is_recorded_once_memory_frees(
    cluster, client, tmp_path
):
    # Given a session whose first step is running
    cluster.wait_ready(set(AGENTS.split(",")))
    gate = tmp_path / "gate"
    sid = start_gated(cluster, gate)
    retries, beats = (
        logged(cluster, retrying("store_out_of_memory")),
        logged(cluster, HEARTBEAT_FAILED),
    )
    # When Redis runs out of memory and the step finishes
    fill_memory(client)
    (gate / OPEN_FILE).touch()
    # Then the worker keeps trying to record its output, and the step is neither failed nor lost
    wait_for(lambda: logged(cluster, retrying("store_out_of_memory")) > retries, 30, what="a retry")
    wait_for(lambda: logged(cluster, HEARTBEAT_FAILED) > beats, 30, what="a refused heartbeat")
    cluster.check_alive()
    assert cluster.session(sid)["steps"]["F"]["status"] == "running"
    # When memory is freed, the output is recorded once and the session completes
    free_memory(client)
    assert_recorded_once(cluster, sid, gate)


def test_misconf_refuses_submits_whole_and_a_running_step_is_recorded_once_the_disk_is_back(
    cluster, client, tmp_path
):
    # Given a session whose first step is running
    cluster.wait_ready(set(AGENTS.split(",")))
    gate = tmp_path / "gate"
    sid = start_gated(cluster, gate)
    retries, pauses = (
        logged(cluster, retrying("store_not_writable")),
        logged(cluster, BRPOP_REFUSED),
    )
    # When Redis cannot save its snapshot and refuses writes (MISCONF)
    saved = refuse_writes(client)
    try:
        before = snapshot(client)
        key = uuid.uuid4().hex
        body = {"goal": "refused", "plan": {"steps": [step("A", "echo_work")]}}
        # Then a submit answers a retryable 503 naming the cause, and writes nothing
        error = assert_refused(post(cluster, body, key), "store_not_writable")
        assert error["details"]["persistence"] == "rdb"
        checked = health(cluster)
        assert checked.status_code == 503
        assert [p["code"] for p in checked.json()["problems"]] == ["store_not_writable"]
        assert_nothing_written(before, snapshot(client))
        # and when the running step finishes, the worker keeps trying to record its output
        (gate / OPEN_FILE).touch()
        wait_for(
            lambda: logged(cluster, retrying("store_not_writable")) > retries, 30, what="a retry"
        )
        # and the worker lives on while Redis refuses its BRPOP (kombu's own transport stops)
        wait_for(lambda: logged(cluster, BRPOP_REFUSED) > pauses, 30, what="a refused BRPOP")
        cluster.check_alive()
        assert cluster.session(sid)["steps"]["F"]["status"] == "running"
    finally:
        # When Redis can save again
        accept_writes(client, saved)
    # Then the output is recorded once, the session completes, and the workers consume again
    assert_recorded_once(cluster, sid, gate)
    cluster.check_alive()
    assert health(cluster).status_code == 200
    cluster.wait_ready(set(AGENTS.split(",")))
    retry = post(cluster, body, key)
    assert retry.status_code == 202, retry.text
    assert cluster.wait_session(retry.json()["sessionId"])["status"] == "completed"


def test_a_full_disk_under_the_append_only_file_refuses_writes_until_space_is_freed(tmp_path):
    """A real ENOSPC: Redis's AOF on a 16 MB disk of its own (tests/support/tiny_disk.py)."""
    require(mount_unavailable(tmp_path / "probe") is None, "mounting a tmpfs (unshare -m, root)")
    server = TinyDiskRedis(tmp_path / "redis-data", free_port())
    server.start()
    cluster = None
    try:
        # Given a cluster on that Redis, and a session whose first step is running
        cluster = start_cluster(server.url, tmp_path)
        client = redis.Redis.from_url(server.url)
        gate = tmp_path / "gate"
        sid = start_gated(cluster, gate)
        retries = logged(cluster, retrying("store_not_writable"))
        # When the disk fills up and Redis cannot append to its AOF
        server.fill_disk(client)
        # Then submits answer a retryable 503 naming the AOF, and the finished step waits
        key = uuid.uuid4().hex
        body = {"goal": "refused", "plan": {"steps": [step("A", "echo_work")]}}
        error = assert_refused(post(cluster, body, key), "store_not_writable")
        assert error["details"]["persistence"] == "aof"
        assert health(cluster).json()["problems"][0]["code"] == "store_not_writable"
        (gate / OPEN_FILE).touch()
        wait_for(
            lambda: logged(cluster, retrying("store_not_writable")) > retries, 30, what="a retry"
        )
        # When space is freed
        server.free_disk()
        # Then the output is recorded once and new submits are taken
        assert_recorded_once(cluster, sid, gate)
        cluster.wait_ready(set(AGENTS.split(",")))
        retry = post(cluster, body, key)
        assert retry.status_code == 202, retry.text
        assert cluster.wait_session(retry.json()["sessionId"])["status"] == "completed"
    finally:
        if cluster is not None:
            cluster.stop()
        server.stop()
