"""/metrics: parsed with the Prometheus text parser, every number checked against Redis."""

from __future__ import annotations

import time

import fakeredis
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api import create_app
from api.metrics import DURATION_BOUNDS_S
from api.routes import metrics as metrics_routes
from orchestrator.core.errors import PermanentStepError, RetryableStepError
from orchestrator.core.models import AgentDefinition, AgentExecutor, Capability, OrchestrateRequest
from orchestrator.core.statuses import AgentStatus, SessionStatus
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.keys import Keys
from tests.support.recording import RecordingDispatcher
from tests.support.world import build_world

KEYS = Keys("meowstik")
FOREVER_MS = 10**13


def agent(agent_id: str, type_: str, capabilities: list[str], **fields) -> AgentDefinition:
    return AgentDefinition(
        id=agent_id,
        name=agent_id,
        type=type_,
        capabilities=[Capability(name=name) for name in capabilities],
        **fields,
    )


WRITER = agent("writer-001", "writer", ["write", "edit"], max_load=3)
FETCHER = agent(
    "fetcher-001",
    "fetcher",
    ["fetch"],
    max_load=2,
    executor=AgentExecutor.HTTP,
    endpoint="http://agents.invalid/fetch",
)
RESTING = agent("resting-001", "writer", ["write"], max_load=1, status=AgentStatus.INACTIVE)
GONE = agent("gone-001", "archivist", ["archive"], max_load=4)


def metrics_client(redis_client, settings: Settings | None = None):
    """The API's test client, with the metrics blueprint registered if the factory lacks it."""
    app = create_app(
        settings or Settings(), redis_client=redis_client, dispatcher=RecordingDispatcher()
    )
    if "metrics" not in app.blueprints:
        app.register_blueprint(metrics_routes.blueprint)
    return app.test_client()


def scrape(client) -> dict[tuple[str, frozenset], float]:
    """GET /metrics, parsed: (sample name, label items) -> value."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def values(samples, name: str, **labels: str) -> dict[frozenset, float]:
    """The samples of one name whose labels include ``labels``, keyed by all their labels."""
    wanted = set(labels.items())
    return {
        found: value
        for (sample, found), value in samples.items()
        if sample == name and wanted <= found
    }


def value(samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def seeded(fake_redis):
    """A registry of four agents (one inactive, one offline, one with an open circuit), steps
    counted and timed by capability, messages on queues, and sessions in two statuses."""
    registry = AgentRegistry(fake_redis, KEYS)
    now_ms = int(time.time() * 1000)
    for definition in (WRITER, FETCHER, RESTING):
        registry.register(definition, worker="w", now_ms=now_ms, alive_ms=FOREVER_MS)
    registry.register(GONE, worker="w", now_ms=0, alive_ms=1)
    fake_redis.zadd(KEYS.agent_slots("writer-001"), {"s1|a": FOREVER_MS, "s2|b": FOREVER_MS})
    fake_redis.zadd(KEYS.agent_slots("writer-001"), {"s0|expired": 1})
    fake_redis.hset(KEYS.agent("fetcher-001"), "circuitOpenUntil", FOREVER_MS)
    fake_redis.hset(
        KEYS.step_counts,
        mapping={
            "write|completed": 5,
            "write|failed": 1,
            "write|retried": 2,
            "fetch|fallback": 1,
            "fetch|cancelled": 1,
            "edit|skipped": 1,
        },
    )
    fake_redis.hset(
        KEYS.step_durations,
        mapping={
            "write|le=0.005": 1,
            "write|le=1": 2,
            "write|le=2.5": 2,
            "write|le=+Inf": 1,
            "write|sum_ms": 407_003,
            "write|count": 6,
        },
    )
    fake_redis.rpush(KEYS.broker("agent.writer-001"), "m1", "m2", "m3")
    fake_redis.rpush(KEYS.broker("agent.writer-001\x06\x163"), "p1", "p2", "p3", "p4", "p5")
    fake_redis.rpush(KEYS.broker("cap.write"), "m4")
    fake_redis.rpush(KEYS.broker("executor.remote"), "m5", "m6")
    fake_redis.rpush(Keys("other").broker("cap.write"), "another deployment's")
    fake_redis.zadd(KEYS.sessions_by_status("executing"), {"a": 1, "b": 2})
    fake_redis.zadd(KEYS.sessions_by_status("completed"), {"c": 1, "d": 2, "e": 3})
    return scrape(metrics_client(fake_redis))


def test_step_counters_equal_the_counts_kept_by_capability_and_outcome(seeded):
    assert values(seeded, "meowstik_steps_total") == {
        frozenset({("capability", "write"), ("outcome", "completed")}): 5,
        frozenset({("capability", "write"), ("outcome", "failed")}): 1,
        frozenset({("capability", "write"), ("outcome", "retried")}): 2,
        frozenset({("capability", "fetch"), ("outcome", "fallback")}): 1,
        frozenset({("capability", "fetch"), ("outcome", "cancelled")}): 1,
        frozenset({("capability", "edit"), ("outcome", "skipped")}): 1,
    }


def test_the_duration_histogram_has_every_bucket_summed_up_to_its_bound(seeded):
    buckets = {
        float(dict(labels)["le"]): count
        for labels, count in values(
            seeded, "meowstik_step_duration_seconds_bucket", capability="write"
        ).items()
    }
    assert buckets == {
        0.005: 1,
        0.01: 1,
        0.025: 1,
        0.05: 1,
        0.1: 1,
        0.25: 1,
        0.5: 1,
        1: 3,
        2.5: 5,
        5: 5,
        10: 5,
        30: 5,
        60: 5,
        300: 5,
        float("inf"): 6,
    }
    assert value(seeded, "meowstik_step_duration_seconds_count", capability="write") == 6
    assert value(seeded, "meowstik_step_duration_seconds_sum", capability="write") == 407.003


def test_queue_depth_counts_each_known_queue_but_not_the_priority_sublists(seeded):
    assert values(seeded, "meowstik_queue_messages") == {
        frozenset({("queue", "agent.writer-001")}): 3,
        frozenset({("queue", "agent.resting-001")}): 0,
        frozenset({("queue", "agent.gone-001")}): 0,
        frozenset({("queue", "executor.remote")}): 2,
        frozenset({("queue", "cap.write")}): 1,
        frozenset({("queue", "cap.edit")}): 0,
        frozenset({("queue", "cap.fetch")}): 0,
        frozenset({("queue", "cap.archive")}): 0,
    }


def test_agents_report_live_load_capacity_liveness_and_circuit(seeded):
    assert value(seeded, "meowstik_agent_load", agent="writer-001", type="writer") == 2
    assert value(seeded, "meowstik_agent_load", agent="fetcher-001", type="fetcher") == 0
    assert value(seeded, "meowstik_agent_capacity", agent="writer-001", type="writer") == 3
    assert value(seeded, "meowstik_agent_capacity", agent="gone-001", type="archivist") == 4
    assert values(seeded, "meowstik_agent_up") == {
        frozenset({("agent", "writer-001"), ("status", "active")}): 1,
        frozenset({("agent", "fetcher-001"), ("status", "active")}): 1,
        frozenset({("agent", "resting-001"), ("status", "inactive")}): 0,
        frozenset({("agent", "gone-001"), ("status", "offline")}): 0,
    }
    assert values(seeded, "meowstik_agent_circuit_open") == {
        frozenset({("agent", "writer-001")}): 0,
        frozenset({("agent", "fetcher-001")}): 1,
        frozenset({("agent", "resting-001")}): 0,
        frozenset({("agent", "gone-001")}): 0,
    }
    # registered agents that never ran: every outcome at 0, no run or wait histogram yet
    assert set(values(seeded, "meowstik_agent_runs_total", agent="writer-001").values()) == {0}
    assert len(values(seeded, "meowstik_agent_runs_total")) == 4 * 6
    assert values(seeded, "meowstik_agent_run_seconds_count") == {}
    assert values(seeded, "meowstik_agent_queue_wait_seconds_count") == {}


def test_sessions_are_counted_in_every_status_including_empty_ones(seeded):
    expected = {status.value: 0 for status in SessionStatus} | {"executing": 2, "completed": 3}
    assert values(seeded, "meowstik_sessions") == {
        frozenset({("status", status)}): count for status, count in expected.items()
    }


def test_an_empty_store_scrapes_to_families_without_step_or_agent_samples(fake_redis):
    samples = scrape(metrics_client(fake_redis))
    assert values(samples, "meowstik_steps_total") == {}
    assert values(samples, "meowstik_agent_load") == {}
    assert values(samples, "meowstik_agent_runs_total") == {}
    assert set(values(samples, "meowstik_sessions").values()) == {0}


def test_a_redis_outage_answers_the_usual_json_503():
    server = fakeredis.FakeServer()
    server.connected = False
    response = metrics_client(fakeredis.FakeRedis(server=server)).get("/metrics")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "store_unavailable"


def test_after_a_session_runs_the_step_counters_equal_the_sessions_step_counts(fake_redis):
    """Given a session whose steps complete, retry, fall back and fail,
    When /metrics is scraped,
    Then its counters and histogram agree with the session's own step counts."""
    settings = Settings(step_max_attempts=2, max_fallbacks=1)
    workers = tuple(agent(f"w{i}", "worker", ["work"], max_load=2) for i in (1, 2))
    world = build_world(fake_redis, settings, agents=workers, prefix="meowstik")
    steps = [{"id": f"s{i}", "title": "s", "requiredCapabilities": ["work"]} for i in range(4)]
    request = OrchestrateRequest.model_validate(
        {"goal": "metrics", "plan": {"steps": steps}, "failurePolicy": "continue"}
    )
    sid = world.engine.submit(request).session_id
    script = [
        ("s0", StepResult("ok")),
        ("s1", RetryableStepError("flaky")),
        ("s2", PermanentStepError("no")),
        ("s3", StepResult("ok")),
        ("s2", PermanentStepError("still no")),
        ("s1", StepResult("ok")),
    ]
    for step_id, outcome in script:
        run = world.lifecycle.begin(
            sid, step_id, world.engine.snapshot(sid).steps[step_id].agent_id
        )
        world.clock.advance(0.25)
        if isinstance(outcome, StepResult):
            world.lifecycle.succeed(run, outcome)
        else:
            world.lifecycle.fail(run, outcome)
    snapshot = world.engine.snapshot(sid)

    samples = scrape(metrics_client(fake_redis, settings))

    def steps(outcome: str) -> float:
        return value(samples, "meowstik_steps_total", capability="work", outcome=outcome)

    assert (snapshot.completed_tasks, snapshot.failed_tasks) == (3, 1)
    assert steps("completed") == snapshot.completed_tasks
    assert steps("failed") == snapshot.failed_tasks
    assert (steps("retried"), steps("fallback")) == (1, 1)
    finished = snapshot.completed_tasks + snapshot.failed_tasks
    assert value(samples, "meowstik_step_duration_seconds_count", capability="work") == finished
    assert (
        value(samples, "meowstik_step_duration_seconds_sum", capability="work") == 0.25 * finished
    )
    assert (
        value(samples, "meowstik_step_duration_seconds_bucket", capability="work", le="0.25")
        == finished
    )
    assert value(samples, "meowstik_sessions", status=snapshot.status.value) == 1


def test_agent_runs_and_histograms_equal_the_agent_metrics_after_a_mixed_run(fake_redis):
    """Given runs recorded through the lifecycle on two agents (successes, a retry, a failure
    for good that falls back and fails again, a lease that runs out),
    When /metrics is scraped,
    Then meowstik_agent_runs_total, meowstik_agent_run_seconds and
    meowstik_agent_queue_wait_seconds equal what AgentMetricsStore reads for each agent."""
    settings = Settings(step_max_attempts=2, retry_backoff_s=0, circuit_failure_threshold=100)
    workers = tuple(agent(f"w{i}", "worker", ["work"], max_load=5) for i in (1, 2))
    world = build_world(fake_redis, settings, agents=workers, prefix="meowstik")
    steps = [{"id": s, "title": s, "requiredCapabilities": ["work"]} for s in "abcde"]
    request = OrchestrateRequest.model_validate(
        {"goal": "agent metrics", "plan": {"steps": steps}, "failurePolicy": "continue"}
    )
    sid = world.engine.submit(request).session_id

    def begin(step_id: str):
        world.clock.advance(0.01)  # each claim after some wait in the queue
        return world.lifecycle.begin(
            sid, step_id, world.sessions.step_record(sid, step_id)["agentId"]
        )

    script = [
        ("a", 0.2, StepResult("ok")),
        ("b", 0.75, StepResult("ok")),
        ("c", 0.02, RetryableStepError("flaky")),  # retried on the same agent
        ("c", 3.0, StepResult("ok")),
        ("d", 0.4, PermanentStepError("no")),  # falls back to the other agent
        ("d", 400.0, PermanentStepError("still no")),  # beyond the last bound: +Inf
    ]
    for step_id, seconds, outcome in script:
        run = begin(step_id)
        world.clock.advance(seconds)
        if isinstance(outcome, StepResult):
            world.lifecycle.succeed(run, outcome)
        else:
            world.lifecycle.fail(run, outcome)
    begin("e")  # its worker dies: the lease runs out and the run is counted timed out
    world.clock.advance(settings.lease_s + 1)
    world.reconciler.run_once()

    samples = scrape(metrics_client(fake_redis, settings))
    expected = world.registry.metrics.read_many(["w1", "w2"], "all", world.now_ms())

    assert sum(m.started for m in expected.values()) == 7
    assert sum(m.timed_out for m in expected.values()) == 1
    for agent_id, metrics in expected.items():
        assert values(samples, "meowstik_agent_runs_total", agent=agent_id) == {
            frozenset({("agent", agent_id), ("outcome", outcome)}): getattr(metrics, outcome)
            for outcome in ("started", "succeeded", "failed", "retried", "fallback", "timed_out")
        }
        for family, latency in (
            ("meowstik_agent_run_seconds", metrics.run),
            ("meowstik_agent_queue_wait_seconds", metrics.queue_wait),
        ):
            if latency.count == 0:
                assert values(samples, f"{family}_count", agent=agent_id) == {}
                continue
            buckets = {
                float(dict(labels)["le"]): count
                for labels, count in values(samples, f"{family}_bucket", agent=agent_id).items()
            }
            # every bound, cumulative, +Inf the count
            assert sorted(buckets) == [*DURATION_BOUNDS_S, float("inf")]
            counts = [buckets[bound] for bound in sorted(buckets)]
            assert counts == sorted(counts)
            assert buckets[float("inf")] == latency.count
            assert value(samples, f"{family}_count", agent=agent_id) == latency.count
            total = value(samples, f"{family}_sum", agent=agent_id)
            assert total / latency.count == pytest.approx(latency.mean_s, abs=1e-4)
    # the run times scripted above, summed over both agents whichever ran them: 0.02, 0.2, 0.4,
    # 0.75, 3 and 400 s (the lost run has no run time); every claim waited in the queue
    run_buckets: dict[float, float] = {}
    for labels, count in values(samples, "meowstik_agent_run_seconds_bucket").items():
        bound = float(dict(labels)["le"])
        run_buckets[bound] = run_buckets.get(bound, 0) + count
    assert {b: run_buckets[b] for b in (0.01, 0.025, 0.25, 0.5, 1, 2.5, 5, 300)} == {
        0.01: 0,
        0.025: 1,
        0.25: 2,
        0.5: 3,
        1: 4,
        2.5: 4,
        5: 5,
        300: 5,
    }
    assert run_buckets[float("inf")] == 6
    run_sum = sum(values(samples, "meowstik_agent_run_seconds_sum").values())
    assert run_sum == pytest.approx(404.37, abs=0.01)
    assert sum(values(samples, "meowstik_agent_queue_wait_seconds_count").values()) == 7
