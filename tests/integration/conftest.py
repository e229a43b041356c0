import pytest
import redis

from tests.support.cluster import Cluster

ALL_AGENTS = {
    "planner-001",
    "researcher-001",
    "coder-001",
    "reviewer-001",
    "echo-001",
    "gate-001",
    "flaky-001",
    "broken-001",
}


@pytest.fixture(scope="module")
def cluster(redis_server, tmp_path_factory):
    """One worker hosting every agent (built-in and test agents) and a gunicorn API."""
    redis.Redis.from_url(redis_server.url).flushall()
    running = Cluster(redis_server.url, tmp_path_factory.mktemp("cluster-logs"))
    try:
        running.start_worker(concurrency=4)
        running.start_api()
        running.wait_ready(ALL_AGENTS)
        yield running
    finally:
        running.stop()
