"""Issue 23: every process refuses to start on a Redis whose maxmemory-policy evicts keys, as
the real commands run: `meowstik up` with an external Redis, `meowstik worker`, and the API
under gunicorn, each saying what is wrong and how to fix it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis
import requests

from cli.embedded_redis import EmbeddedRedis
from tests.support.cluster import REPO_ROOT, Cluster, cluster_env, wait_for
from tests.support.redis_server import free_port

pytestmark = pytest.mark.integration
FIX = "CONFIG SET maxmemory-policy noeviction"
START_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def evicting(tmp_path_factory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("evicting"), free_port())
    server.start()
    redis.Redis.from_url(server.url).config_set("maxmemory-policy", "allkeys-lru")
    yield server
    server.stop()


def run_command(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO_ROOT,
        env=cluster_env(url, **env),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
    )


def test_meowstik_up_refuses_an_evicting_external_redis_before_starting_anything(
    evicting, tmp_path
):
    done = run_command(
        evicting.url,
        "up",
        "--workers",
        "echo-001",
        MEOWSTIK_DATA_DIR=str(tmp_path),
        MEOWSTIK_API_PORT=str(free_port()),
    )

    assert done.returncode == 1, done.stdout + done.stderr
    assert "maxmemory-policy is 'allkeys-lru'" in done.stderr and FIX in done.stderr
    assert not (tmp_path / "logs" / "api.log").exists()  # no child was started


def test_a_worker_refuses_an_evicting_redis_and_starts_with_the_override(evicting, tmp_path):
    refused = run_command(evicting.url, "worker", "--agents", "echo-001", "--pool", "solo")
    assert refused.returncode == 2
    assert "MEOWSTIK_REDIS_ALLOW_EVICTION" in refused.stderr and FIX in refused.stderr

    cluster = Cluster(evicting.url, tmp_path, {"MEOWSTIK_REDIS_ALLOW_EVICTION": "true"})
    try:
        cluster.start_worker(agents="echo-001", concurrency=1)
        cluster.start_api()
        cluster.wait_ready({"echo-001"}, timeout_s=START_TIMEOUT_S)
        health = cluster_health(cluster)
        assert health["status"] == "ok" and health["warnings"][0]["code"] == "redis_eviction_policy"
    finally:
        cluster.stop()


def test_the_api_refuses_to_boot_on_an_evicting_redis(evicting, tmp_path):
    cluster = Cluster(evicting.url, tmp_path)
    api = cluster.start_api()
    try:
        wait_for(lambda: api.poll() is not None, START_TIMEOUT_S, what="the API to stop")
        log = (tmp_path / "api.log").read_text(errors="replace")
        assert api.returncode != 0 and FIX in log and "EvictionPolicyError" in log
    finally:
        cluster.stop()


def cluster_health(cluster: Cluster) -> dict:
    return requests.get(f"{cluster.api_url}/healthz", timeout=5).json()
