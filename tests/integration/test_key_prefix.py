"""Two deployments on one Redis database, told apart by MEOWSTIK_KEY_PREFIX alone.

kombu writes every broker key under ``Keys.broker("")`` (its ``global_keyprefix``), so the two
deployments' ``agent.echo-001`` queues are different lists: a real worker of one ("blue", a
worker and the API under gunicorn) never takes a message of the other ("green", its API
in-process with the same agent registered and no worker), and the queue-depth readers (the API's
queue table, ``MetricsReader``, ``SessionStore.queue_length`` of the workers' deafness check) each
count their own deployment's messages.
"""

from __future__ import annotations

import pytest
import redis
import requests

from orchestrator.core.models import AgentDefinition, Capability
from orchestrator.engine.wiring import build_engine
from orchestrator.settings import Settings
from orchestrator.store.keys import Keys
from tests.support.cluster import Cluster
from tests.support.plans import step
from workers.celery_app import create_celery_app
from workers.dispatcher import CeleryDispatcher

pytestmark = pytest.mark.integration

BLUE, GREEN = "blue", "green"
AGENT = "echo-001"
QUEUE = f"agent.{AGENT}"
ECHO = AgentDefinition(
    id=AGENT, name="Echo", type="tester", max_load=4, capabilities=[Capability(name="echo_work")]
)
REGISTERED_FOR_MS = 10 * 60 * 1000  # green's agent stays active without a worker's heartbeat


@pytest.fixture(scope="module")
def blue(redis_server, tmp_path_factory):
    """The blue deployment: a real worker hosting echo-001 and the API, under prefix blue."""
    redis.Redis.from_url(redis_server.url).flushall()
    running = Cluster(
        redis_server.url, tmp_path_factory.mktemp("blue-logs"), {"MEOWSTIK_KEY_PREFIX": BLUE}
    )
    try:
        running.start_worker(concurrency=2, agents=AGENT)
        running.start_api()
        running.wait_ready({AGENT})
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def green(redis_server):
    """The green deployment on the same database: the API in-process, publishing with Celery
    under prefix green, echo-001 registered as if a worker hosted it, and no worker."""
    from api.app import create_app

    settings = Settings(redis_url=redis_server.url, key_prefix=GREEN)
    client = redis.Redis.from_url(redis_server.url)
    celery_app = create_celery_app(settings)
    wired = build_engine(settings, client, CeleryDispatcher(celery_app))
    now_ms = wired.context.clock.now_ms()
    wired.registry.register(ECHO, worker="nobody@green", now_ms=now_ms, alive_ms=REGISTERED_FOR_MS)
    app = create_app(settings, redis_client=client, dispatcher=CeleryDispatcher(celery_app))
    yield app.test_client(), celery_app, wired
    client.close()


def echo_plan(goal: str) -> dict:
    return {"goal": goal, "plan": {"steps": [step("E", "echo_work")]}}


def queue_depths(response_json: dict) -> dict[str, int]:
    return {queue["name"]: queue["messages"] for queue in response_json["active_queues"]}


def test_a_worker_never_takes_another_deployments_message_and_each_counts_its_own_queue(
    blue, green, redis_server
):
    green_api, green_celery, green_wired = green
    # Given a step of green routed to echo-001: its message waits on green's agent.echo-001
    submitted = green_api.post("/api/orchestrator/orchestrate", json=echo_plan("green work"))
    assert submitted.status_code == 202, submitted.get_json()
    green_sid = submitted.get_json()["sessionId"]
    assert green_wired.sessions.step_record(green_sid, "E")["queue"] == QUEUE

    # When blue runs a session of its own on a queue of the same name, after green's message
    # was published (blue's worker takes its queue in order: had it seen green's message, it
    # would have taken that one first)
    done = blue.wait_session(blue.submit(echo_plan("blue work"))["sessionId"])

    # Then blue's step ran, and green's message was left alone, counted by green's readers only
    assert done["status"] == "completed", done["errors"]
    green_depths = queue_depths(green_api.get("/api/queues/length").get_json())
    assert green_depths[QUEUE] == 1
    assert green_wired.sessions.queue_length(QUEUE) == 1
    blue_depths = queue_depths(requests.get(f"{blue.api_url}/api/queues/length", timeout=10).json())
    assert blue_depths[QUEUE] == 0
    assert green_sid not in (blue.log_dir / "worker.log").read_text(errors="replace")
    # and every key of either deployment, the broker's included, is under its prefix
    client = redis.Redis.from_url(redis_server.url)
    names = {key.decode() for key in client.scan_iter(count=1000)}
    assert names, "the deployments wrote nothing"
    outside = sorted(n for n in names if not n.startswith((f"{BLUE}:", f"{GREEN}:")))
    assert not outside, f"keys under neither prefix: {outside}"
    assert client.llen(Keys(GREEN).broker(QUEUE)) == 1
    assert any(n.startswith(Keys(BLUE).broker("_kombu.binding.")) for n in names)

    # When green's own consumer takes from its queue, it gets green's step, and the count drops
    with green_celery.connection_for_read() as connection:
        message = connection.default_channel.basic_get(QUEUE, no_ack=True)
    assert message is not None and message.headers["id"] == f"{green_sid}.E"
    assert green_wired.sessions.queue_length(QUEUE) == 0
    assert queue_depths(green_api.get("/api/queues/length").get_json())[QUEUE] == 0
    client.close()
