"""Issue 4's broker-level faults: a step longer than the visibility timeout, and Redis killed and
restarted under a running session. Each test runs its own cluster (its own settings or Redis)."""

import os
import signal
import uuid

import pytest
import redis

from cli.embedded_redis import EmbeddedRedis
from tests.support.cluster import Cluster, wait_for
from tests.support.plans import step
from tests.support.redis_server import free_port

pytestmark = pytest.mark.integration
AGENTS = "gate-001,echo-001"


def start_cluster(redis_url, log_dir, **env) -> Cluster:
    cluster = Cluster(redis_url, log_dir, env)
    cluster.start_worker(concurrency=3, agents=AGENTS)
    cluster.start_api()
    cluster.wait_ready(set(AGENTS.split(",")))
    return cluster


def test_a_step_longer_than_the_visibility_timeout_runs_once(redis_server, tmp_path):
    # Given kombu restoring unacked messages 10 s after delivery (checked every 2 s)
    redis.Redis.from_url(redis_server.url).flushall()
    cluster = start_cluster(
        redis_server.url,
        tmp_path,
        MEOWSTIK_VISIBILITY_TIMEOUT_S="10",
        MEOWSTIK_UNACKED_RESTORE_INTERVAL_S="2",
        MEOWSTIK_UNACKED_RESTORE_THROTTLE="1",
    )
    try:
        client = redis.Redis.from_url(redis_server.url)
        gate = uuid.uuid4().hex
        sid = cluster.submit(
            {"goal": "long", "plan": {"steps": [step("L", "gated_work", gate=gate)]}}
        )["sessionId"]
        # When the step runs past the visibility timeout, kombu delivers it again
        redelivered = wait_for(
            lambda: [
                e
                for e in cluster.logs(sid)
                if e["message"] == "Delivery not run" and e["data"]["reason"] == "leased"
            ],
            45,
            interval_s=0.5,
            what="kombu's redelivery of the running step",
        )
        assert redelivered
        client.lpush(f"test:gate:{gate}", "open")
        done = cluster.wait_session(sid)
        # Then the second delivery met the live lease and did not run: one run, one result
        assert done["status"] == "completed"
        assert int(client.get(f"test:runs:{gate}")) == 1
        assert done["steps"]["L"]["attempts"] == 1 and done["completedTasks"] == 1
    finally:
        cluster.stop()


def test_redis_killed_and_restarted_mid_session_loses_nothing(tmp_path):
    # Given a cluster on its own Redis with AOF, and a session with a step running
    server = EmbeddedRedis(tmp_path / "redis-data", free_port())
    server.start()
    cluster = start_cluster(server.url, tmp_path, MEOWSTIK_WORKER_REMOTE_CONTROL="false")
    try:
        gate = uuid.uuid4().hex
        plan = {"steps": [step("G", "gated_work", gate=gate), step("E", "echo_work", "G")]}
        sid = cluster.submit({"goal": "survive redis", "plan": plan})["sessionId"]
        wait_for(lambda: cluster.session(sid)["steps"]["G"]["status"] == "running", 30, what="G")
        wait_for(lambda: (tmp_path / "redis-data" / "redis").exists(), 5, what="AOF dir")
        # When Redis is killed with SIGKILL and started again on the same data
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
        server = EmbeddedRedis(tmp_path / "redis-data", server.port)
        server.start()
        client = redis.Redis.from_url(server.url)
        client.lpush(f"test:gate:{gate}", "open")
        # Then the session completes with one result per step
        done = cluster.wait_session(sid, timeout_s=90)
        assert done["status"] == "completed", done["errors"]
        assert set(done["results"]) == set(done["jobIds"])
        # and the workers consume again
        after = cluster.wait_session(
            cluster.submit(
                {"goal": "after the restart", "plan": {"steps": [step("X", "echo_work")]}}
            )["sessionId"]
        )
        assert after["status"] == "completed"
    finally:
        cluster.stop()
        server.stop()


def test_under_meowstik_up_a_worker_that_dies_with_redis_is_restarted_and_the_session_completes(
    tmp_path,
):
    """With Celery remote control on (the default), kombu 5.7's worker exits when Redis restarts
    (its pub/sub reconnect fails); the supervisor restarts it and nothing is lost."""
    from tests.integration.test_up import start_up, stop_and_collect
    from tests.support.cluster import REPO_ROOT

    server = EmbeddedRedis(tmp_path / "redis-data", free_port())
    server.start()
    up = start_up(
        tmp_path / "up",
        "--workers",
        AGENTS,
        MEOWSTIK_REDIS_URL=server.url,
        MEOWSTIK_AGENT_MODULES="tests.support.agents",
        PYTHONPATH=str(REPO_ROOT),
        MEOWSTIK_LEASE_S="3",
        MEOWSTIK_HEARTBEAT_INTERVAL_S="1",
        MEOWSTIK_HEARTBEAT_TIMEOUT_S="3",
    )
    try:
        wait_for(up.is_ready, 90, what="meowstik up ready")
        cluster = Cluster(server.url, tmp_path)
        cluster.api_url = up.api_url
        gate = uuid.uuid4().hex
        plan = {"steps": [step("G", "gated_work", gate=gate), step("E", "echo_work", "G")]}
        sid = cluster.submit({"goal": "supervised", "plan": plan})["sessionId"]
        wait_for(lambda: cluster.session(sid)["steps"]["G"]["status"] == "running", 30, what="G")
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
        server = EmbeddedRedis(tmp_path / "redis-data", server.port)
        server.start()
        redis.Redis.from_url(server.url).lpush(f"test:gate:{gate}", "open")
        done = cluster.wait_session(sid, timeout_s=120)
        assert done["status"] == "completed", done["errors"]
        # the log written before the restarts is still there, through the session's end
        messages = [entry["message"] for entry in cluster.logs(sid)]
        assert messages[0].startswith("Session created") and messages[-1] == "Session finished"
        after = cluster.wait_session(
            cluster.submit({"goal": "after", "plan": {"steps": [step("X", "echo_work")]}})[
                "sessionId"
            ],
            timeout_s=60,
        )
        assert after["status"] == "completed"
        assert stop_and_collect(up) == 0
    finally:
        if up.process.poll() is None:
            up.process.kill()
        server.stop()


def test_with_redis_down_submit_answers_503_within_a_second_in_json(tmp_path):
    import time

    import requests

    from tests.support.cluster import Cluster

    dead_url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    cluster = Cluster(dead_url, tmp_path)
    cluster.start_api()
    try:
        wait_for(lambda: _answers(cluster.api_url), 30, what="API up")
        health = requests.get(f"{cluster.api_url}/healthz", timeout=5)
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
        started = time.monotonic()
        response = requests.post(
            f"{cluster.api_url}/api/orchestrator/orchestrate",
            json={"goal": "Research and write a blog post about owls"},
            timeout=10,
        )
        elapsed = time.monotonic() - started
        assert response.status_code == 503 and response.headers["Content-Type"].startswith(
            "application/json"
        )
        assert response.json()["error"]["code"] == "store_unavailable"
        assert elapsed < 1.0, f"took {elapsed:.2f} s"
    finally:
        cluster.stop()


def _answers(url: str) -> bool:
    import requests

    try:
        requests.get(f"{url}/healthz", timeout=2)
        return True
    except requests.RequestException:
        return False
