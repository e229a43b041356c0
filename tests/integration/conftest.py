import pytest
import redis

from tests.support.cluster import Cluster
from tests.support.http_servers import JsonServer, fake_chat_completions

SIGNING_SECRET = "integration-signing-secret"
MAIN_AGENTS = (
    "planner-001,researcher-001,coder-001,reviewer-001,echo-001,gate-001,flaky-001,broken-001,"
    "primary-001,secondary-001,solo-001,asker-001,decomposer-001,stateful-001,stateful-002,"
    "counted-001"
)


@pytest.fixture(scope="session")
def fake_llm():
    """An OpenAI-compatible chat API on loopback, configured as the cluster's LLM."""
    with JsonServer(fake_chat_completions) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(redis_server, tmp_path_factory, fake_llm):
    """A worker hosting the built-in and test agents, a remote-executor worker for HTTP and LLM
    agents, and the API under gunicorn, on one real Redis."""
    redis.Redis.from_url(redis_server.url).flushall()
    running = Cluster(
        redis_server.url,
        tmp_path_factory.mktemp("cluster-logs"),
        {
            "MEOWSTIK_LLM_BASE_URL": f"{fake_llm.url}/v1",
            "MEOWSTIK_LLM_MODEL": "test-model",
            "MEOWSTIK_LLM_STREAM": "false",  # this fake answers JSON only (see test_llm_agents)
            # goals are planned by rules unless a test asks for another planner
            "MEOWSTIK_PLANNER": "rule",
            # webhooks and HTTP agent calls are signed; failed deliveries come back quickly
            "MEOWSTIK_SIGNING_SECRETS": SIGNING_SECRET,
            "MEOWSTIK_WEBHOOK_BACKOFF_S": "0.2",
        },
    )
    try:
        running.start_worker(concurrency=4, agents=MAIN_AGENTS)
        running.start_worker("remote", concurrency=4, remote=True)
        running.start_api()
        running.wait_ready(set(MAIN_AGENTS.split(",")))
        yield running
    finally:
        running.stop()
