"""Agent metrics across sessions (issue 21): counted by the lifecycle scripts with each record,
so after a mixed run (successes, failures, retries, fallbacks, a lost lease) they equal what the
session records say, a duplicate completion counts nothing, and the windows read the same."""

import time

import pytest

from orchestrator.core.agent_metrics import latency, quantile
from orchestrator.core.errors import PermanentStepError, RetryableStepError
from orchestrator.core.models import AgentDefinition, Capability, OrchestrateRequest
from orchestrator.core.step_runs import StepRun
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from tests.support.world import build_world


def definition(agent_id: str) -> AgentDefinition:
    return AgentDefinition(
        id=agent_id, name=agent_id, type="t", max_load=5, capabilities=[Capability(name="work")]
    )


@pytest.fixture
def world(any_redis):
    settings = Settings(step_max_attempts=2, retry_backoff_s=0, circuit_failure_threshold=100)
    return build_world(any_redis, settings, agents=(definition("a1"), definition("a2")))


def submit(world, *step_ids):
    steps = [{"id": s, "title": s, "requiredCapabilities": ["work"]} for s in step_ids]
    request = OrchestrateRequest.model_validate(
        {"goal": "g", "plan": {"steps": steps}, "failurePolicy": "continue"}
    )
    return world.engine.submit(request).session_id


def begin(world, sid, step_id):
    agent = world.sessions.step_record(sid, step_id)["agentId"]
    run = world.lifecycle.begin(sid, step_id, agent)
    assert isinstance(run, StepRun), run
    return run


def test_metrics_equal_the_session_records_after_a_mixed_run(world):
    sid = submit(world, "ok1", "ok2", "retry", "fallback", "lost")
    agents_of = {}
    for step_id in ("ok1", "ok2"):
        run = begin(world, sid, step_id)
        world.clock.advance(0.2)
        world.lifecycle.succeed(run, StepResult("done"))
        # a redelivered completion of the same run counts nothing
        world.lifecycle.succeed(run, StepResult("done"))
        agents_of[step_id] = [run.agent_id]
    # retried once on the same agent, then succeeded
    run = begin(world, sid, "retry")
    world.lifecycle.fail(run, RetryableStepError("flaky"))
    again = begin(world, sid, "retry")
    assert again.agent_id == run.agent_id
    world.lifecycle.succeed(again, StepResult("done"))
    # failed for good on one agent: falls back to the other, which fails too
    run = begin(world, sid, "fallback")
    world.lifecycle.fail(run, PermanentStepError("bad input"))
    other = begin(world, sid, "fallback")
    assert other.agent_id != run.agent_id
    world.lifecycle.fail(other, PermanentStepError("still bad"))
    fallback_agents = (run.agent_id, other.agent_id)
    # a run whose lease runs out (its worker died): timed out, then recovered and completed
    lost = begin(world, sid, "lost")
    world.clock.advance(world.engine.settings.lease_s + 1)
    world.reconciler.run_once()
    rerun = world.lifecycle.begin(sid, "lost", world.sessions.step_record(sid, "lost")["agentId"])
    assert isinstance(rerun, StepRun)
    world.lifecycle.succeed(rerun, StepResult("done"))
    snap = world.engine.snapshot(sid)

    metrics = world.registry.metrics.read_many(["a1", "a2"], "all", world.now_ms())
    total = {
        name: sum(getattr(m, name) for m in metrics.values())
        for name in ("started", "succeeded", "failed", "retried", "fallback", "timed_out")
    }
    completed = [s for s in snap.steps.values() if s.status == "completed"]
    failed = [s for s in snap.steps.values() if s.status == "failed"]
    assert total["succeeded"] == len(completed) == 4
    assert total["failed"] == len(failed) == 1
    assert total["retried"] == 1 and total["fallback"] == 1 and total["timed_out"] == 1
    # every claim started a run: the attempts the records show
    assert total["started"] == sum(s.attempts for s in snap.steps.values() if s.attempts) == 8
    failer = metrics[fallback_agents[1]]
    assert failer.failed_by_type == {"PermanentStepError": 1}
    assert failer.by_capability["work"].failed == 1
    assert lost.agent_id in metrics and metrics[lost.agent_id].timed_out == 1
    runs = sum(m.run.count for m in metrics.values())
    assert runs == 4 + 1 + 1 + 1  # succeeded + failed + retried + fallback (timeouts: no run time)
    ok1 = metrics[agents_of["ok1"][0]]
    assert ok1.run.p50_s is not None and ok1.queue_wait.count >= 1
    # the windows see the same counts (all of it happened within the hour)
    hour = world.registry.metrics.read_many(["a1", "a2"], "1h", world.now_ms())
    day = world.registry.metrics.read_many(["a1", "a2"], "24h", world.now_ms())
    for agent in ("a1", "a2"):
        for name in total:
            assert getattr(hour[agent], name) == getattr(metrics[agent], name), (agent, name)
            assert getattr(day[agent], name) == getattr(metrics[agent], name), (agent, name)
        assert hour[agent].by_capability == metrics[agent].by_capability
    succeeded = sum(m.succeeded for m in metrics.values())
    ended = sum(
        m.succeeded + m.failed + m.retried + m.fallback + m.timed_out for m in metrics.values()
    )
    assert ended == 8 and succeeded / ended == 0.5


def test_an_hour_later_the_hour_window_is_empty_and_the_day_still_counts(world):
    sid = submit(world, "s")
    run = begin(world, sid, "s")
    world.lifecycle.succeed(run, StepResult("done"))
    world.clock.advance(3700)
    hour = world.registry.metrics.read_many([run.agent_id], "1h", world.now_ms())[run.agent_id]
    day = world.registry.metrics.read_many([run.agent_id], "24h", world.now_ms())[run.agent_id]
    assert (hour.succeeded, hour.success_rate) == (0, None)
    assert (day.succeeded, day.success_rate) == (1, 1.0)


def test_quantiles_interpolate_inside_buckets_like_prometheus():
    # 10 runs: 4 in (0.1, 0.25], 6 in (0.25, 0.5]
    buckets = [(0.1, 0), (0.25, 4), (0.5, 6), (1, 0)]
    assert quantile(buckets, 0, 0.5) == pytest.approx(0.25 + 0.25 * (5 - 4) / 6, abs=1e-4)
    assert quantile(buckets, 0, 0.2) == pytest.approx(0.1 + 0.15 * 2 / 4, abs=1e-4)
    assert quantile(buckets, 5, 0.99) == 1.0  # in +Inf: the largest finite bound
    counters = {"run|le=0.25": 4, "run|le=0.5": 6, "run|sum_ms": 3500}
    view = latency(counters, "run")
    assert (view.count, view.mean_s) == (10, 0.35)


def test_the_api_shows_metrics_on_the_agent_and_by_window(fake_redis):
    from api import create_app
    from orchestrator.core.fleet import DEFAULT_AGENTS
    from tests.support.recording import RecordingDispatcher

    app = create_app(Settings(), redis_client=fake_redis, dispatcher=RecordingDispatcher())
    client = app.test_client()
    world = build_world(fake_redis, Settings(), agents=DEFAULT_AGENTS, prefix="meowstik")
    agent = DEFAULT_AGENTS[0]
    capability = agent.capabilities[0].name
    body = {"goal": "g", "plan": {"steps": [{"id": "s", "title": "s",
            "requiredCapabilities": [capability]}]}}  # fmt: skip
    sid = world.engine.submit(OrchestrateRequest.model_validate(body)).session_id
    run = world.lifecycle.begin(sid, "s", world.sessions.step_record(sid, "s")["agentId"])
    world.lifecycle.succeed(run, StepResult("done"))

    detail = client.get(f"/api/orchestrator/agents/{run.agent_id}")
    assert detail.status_code == 200
    metrics = detail.get_json()["metrics"]
    assert set(metrics) == {"1h", "24h", "all"}
    assert metrics["all"]["succeeded"] == 1 and metrics["all"]["successRate"] == 1.0
    window = client.get(f"/api/orchestrator/agents/{run.agent_id}/metrics?window=all")
    assert window.status_code == 200
    assert window.get_json()["byCapability"][capability]["succeeded"] == 1
    bad = client.get(f"/api/orchestrator/agents/{run.agent_id}/metrics?window=week")
    assert bad.status_code == 422
    assert bad.get_json()["error"]["details"]["errors"][0]["location"] == "query.window"
    missing = client.get("/api/orchestrator/agents/nobody/metrics")
    assert missing.status_code == 404


def test_the_agent_list_carries_each_agents_metrics_over_a_window_when_asked(fake_redis):
    from api import create_app
    from orchestrator.core.fleet import DEFAULT_AGENTS
    from tests.support.recording import RecordingDispatcher

    app = create_app(Settings(), redis_client=fake_redis, dispatcher=RecordingDispatcher())
    client = app.test_client()
    world = build_world(fake_redis, Settings(), agents=DEFAULT_AGENTS, prefix="meowstik")
    world.clock.now_s = time.time()  # the API reads the windows at its own (real) time
    capability = DEFAULT_AGENTS[0].capabilities[0].name
    body = {"goal": "g", "plan": {"steps": [{"id": "s", "title": "s",
            "requiredCapabilities": [capability]}]}}  # fmt: skip
    sid = world.engine.submit(OrchestrateRequest.model_validate(body)).session_id
    run = world.lifecycle.begin(sid, "s", world.sessions.step_record(sid, "s")["agentId"])
    world.clock.advance(0.3)
    world.lifecycle.succeed(run, StepResult("done"))

    plain = client.get("/api/orchestrator/agents").get_json()
    assert all("metrics" not in agent for agent in plain["agents"])
    for window in ("1h", "24h", "all"):
        listed = client.get(f"/api/orchestrator/agents?metrics={window}")
        assert listed.status_code == 200
        agents = {agent["id"]: agent for agent in listed.get_json()["agents"]}
        assert set(agents) == {a["id"] for a in plain["agents"]}
        for agent_id, agent in agents.items():
            one = client.get(f"/api/orchestrator/agents/{agent_id}/metrics?window={window}")
            assert agent["metrics"] == one.get_json(), (agent_id, window)
        ran = agents[run.agent_id]["metrics"]
        assert (ran["started"], ran["succeeded"], ran["successRate"]) == (1, 1, 1.0)
        assert ran["run"]["count"] == 1 and ran["window"] == window
    bad = client.get("/api/orchestrator/agents?metrics=week")
    assert bad.status_code == 422
    assert bad.get_json()["error"]["details"]["errors"][0]["location"] == "query.metrics"
