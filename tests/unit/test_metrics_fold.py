"""The lifecycle scripts append one metric fact per outcome instead of writing the counters
(lua/_slots.lua fold_metrics): whether folded inside a script (every 200 facts), by a reader or
by the reconciler, the counters come out as if each outcome had been counted where it happened,
and a reader never misses an outcome recorded before it."""

import json

import pytest

from orchestrator.core.models import AgentDefinition, Capability, OrchestrateRequest
from orchestrator.core.step_runs import StepRun
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from tests.support.world import build_world

FOLD_AT = 200  # lua/_slots.lua
STEPS = 450


def definition(agent_id: str) -> AgentDefinition:
    return AgentDefinition(
        id=agent_id,
        name=agent_id,
        type="t",
        max_load=1000,
        capabilities=[Capability(name="work"), Capability(name="more")],
    )


@pytest.fixture
def world(any_redis):
    return build_world(any_redis, Settings(), agents=(definition("a1"), definition("a2")))


def run_steps(world, count: int) -> str:
    steps = [
        {"id": f"s{i}", "title": "t", "requiredCapabilities": ["work", "more"]}
        for i in range(count)
    ]
    request = OrchestrateRequest.model_validate({"goal": "g", "plan": {"steps": steps}})
    sid = world.engine.submit(request).session_id
    for i in range(count):
        record = world.sessions.step_record(sid, f"s{i}")
        run = world.lifecycle.begin(sid, f"s{i}", record["agentId"])
        assert isinstance(run, StepRun), run
        world.clock.advance(0.001 * (i % 40))  # run times across several histogram buckets
        world.lifecycle.succeed(run, StepResult("done"))
    return sid


def ints(client, key) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(key).items()}


def test_facts_fold_into_the_counters_each_outcome_stands_for(world, any_redis):
    keys = world.sessions.keys
    sid = run_steps(world, STEPS)
    # 900 facts (a start and a success per step, plus the step metrics' one per completion)
    # were appended; the scripts folded every 200, so fewer than 200 wait and some are counted
    pending = any_redis.llen(keys.metrics_pending)
    assert 0 < pending < FOLD_AT
    folded_early = ints(any_redis, keys.step_counts).get("work|completed", 0)
    assert 0 < folded_early < STEPS
    # a reader folds the rest first
    metrics = world.registry.metrics.read_many(["a1", "a2"], "all", world.now_ms())
    assert any_redis.llen(keys.metrics_pending) == 0
    assert sum(m.started for m in metrics.values()) == STEPS
    assert sum(m.succeeded for m in metrics.values()) == STEPS
    for m in (m for m in metrics.values() if m.started):
        assert m.by_capability["work"].succeeded == m.by_capability["more"].succeeded == m.succeeded
        assert m.run.count == m.succeeded and m.queue_wait.count == m.started
    # the step metrics: one count per completion, a histogram whose buckets sum to them and
    # whose sum is the records' run times
    assert ints(any_redis, keys.step_counts) == {"work|completed": STEPS}
    durations = ints(any_redis, keys.step_durations)
    assert sum(v for k, v in durations.items() if "|le=" in k) == STEPS
    records = any_redis.hgetall(keys.steps(sid)).values()
    run_ms = [json.loads(r)["finishedAt"] - json.loads(r)["startedAt"] for r in records]
    assert durations["work|sum_ms"] == sum(run_ms)
    assert len({k for k in durations if "|le=" in k}) >= 3
    # the windows count the same, and expire
    for agent_id, view in ((a, v) for a, v in metrics.items() if v.started):
        hour = world.registry.metrics.read(agent_id, "1h", world.now_ms())
        assert (hour.started, hour.succeeded) == (view.started, view.succeeded)
        windows = [k for k in any_redis.keys(keys.agent_metrics(agent_id) + ":*")]
        assert windows and all(any_redis.ttl(k) > 0 for k in windows)
        assert any_redis.ttl(keys.agent_metrics(agent_id)) == -1  # all-time: never expires


def test_a_duplicate_completion_appends_no_fact(world, any_redis):
    keys = world.sessions.keys
    request = OrchestrateRequest.model_validate(
        {
            "goal": "g",
            "plan": {"steps": [{"id": "s", "title": "t", "requiredCapabilities": ["work"]}]},
        }
    )
    sid = world.engine.submit(request).session_id
    run = world.lifecycle.begin(sid, "s", world.sessions.step_record(sid, "s")["agentId"])
    world.sessions.metrics_fold.fold()
    world.lifecycle.succeed(run, StepResult("done"))
    after_first = any_redis.llen(keys.metrics_pending)
    assert after_first == 2  # the step's completion and the agent's success
    world.lifecycle.succeed(run, StepResult("done"))
    assert any_redis.llen(keys.metrics_pending) == after_first


def test_the_reconciler_folds_what_no_reader_asked_for(world, any_redis):
    run_steps(world, 3)
    assert any_redis.llen(world.sessions.keys.metrics_pending) > 0
    world.reconciler.run_once()
    assert any_redis.llen(world.sessions.keys.metrics_pending) == 0
    assert ints(any_redis, world.sessions.keys.step_counts) == {"work|completed": 3}


def test_a_fold_that_fails_does_not_stop_the_script_that_recorded_an_outcome(world, any_redis):
    """A script's writes are not rolled back: if the fold inside it failed (here, a fact it
    cannot use: a run fact without its hour), the record it made must still be whole; the facts
    wait, none is lost."""
    keys = world.sessions.keys
    broken = json.dumps(["r", "sid", "step", "agent", "-", 1, 1, False, None, 1])
    any_redis.rpush(keys.metrics_pending, *[broken] * (FOLD_AT - 1))
    request = OrchestrateRequest.model_validate(
        {
            "goal": "g",
            "plan": {"steps": [{"id": "s", "title": "t", "requiredCapabilities": ["work"]}]},
        }
    )
    sid = world.engine.submit(request).session_id
    run = world.lifecycle.begin(sid, "s", world.sessions.step_record(sid, "s")["agentId"])
    assert isinstance(run, StepRun)  # its fact made FOLD_AT: the fold failed inside the claim
    assert world.sessions.step_record(sid, "s")["status"] == "running"
    world.lifecycle.succeed(run, StepResult("done"))
    assert world.sessions.step_record(sid, "s")["status"] == "completed"
    assert any_redis.llen(keys.metrics_pending) == FOLD_AT + 2  # nothing folded, nothing lost


def test_a_fact_that_is_not_json_is_dropped_and_the_others_count(world, any_redis):
    keys = world.sessions.keys
    any_redis.rpush(keys.metrics_pending, "not json", "[1, 2")
    run_steps(world, 2)
    assert world.sessions.metrics_fold.fold() == 2 + 6
    assert ints(any_redis, keys.step_counts) == {"work|completed": 2}
