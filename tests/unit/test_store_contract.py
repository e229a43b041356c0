"""The session lifecycle scripts, against fakeredis and a real redis-server alike."""

import pytest

from orchestrator.core.errors import RetryableStepError
from orchestrator.core.models import OrchestrateRequest
from orchestrator.core.step_runs import Skip, StepRun
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from orchestrator.store.keys import Keys
from tests.support.world import build_world

SETTINGS = Settings(lease_s=10, step_max_attempts=2, retry_backoff_s=0.5)
R = "researcher-001"


@pytest.fixture
def world(any_redis):
    w = build_world(any_redis, SETTINGS)
    return w.engine, w.lifecycle, w.dispatcher, w.clock, w.registry


def load(world, agent_id=R) -> int:
    _, _, _, clock, registry = world
    return registry.get(agent_id, int(clock() * 1000)).current_load


def diamond(policy="fail_fast"):
    steps = [
        {"id": "a", "title": "A", "requiredCapabilities": ["web_research"]},
        {"id": "b", "title": "B", "requiredCapabilities": ["web_research"]},
        {"id": "c", "title": "C", "requiredCapabilities": ["web_research"], "dependsOn": ["a"]},
        {
            "id": "d",
            "title": "D",
            "requiredCapabilities": ["web_research"],
            "dependsOn": ["a", "b"],
        },
    ]
    return OrchestrateRequest.model_validate(
        {
            "goal": "diamond",
            "plan": {"steps": steps},
            "failurePolicy": policy,
            "initialContext": {"lang": "python"},
        }
    )


def run(lifecycle, sid, step_id) -> StepRun:
    claimed = lifecycle.begin(sid, step_id, R)
    assert isinstance(claimed, StepRun), claimed
    return claimed


def test_submit_queues_only_steps_without_dependencies(world):
    engine, _, dispatcher, _, _ = world
    snap = engine.submit(diamond())
    assert dispatcher.step_ids == ["a", "b"]
    assert {k: v.status for k, v in snap.steps.items()} == {
        "a": "queued",
        "b": "queued",
        "c": "pending",
        "d": "pending",
    }
    assert snap.job_ids == [f"{snap.session_id}.{s}" for s in "abcd"]
    assert {(d.queue, d.agent_id) for d, _ in dispatcher.sent} == {
        ("agent.researcher-001", "researcher-001")
    }


def test_a_step_is_released_exactly_when_its_last_dependency_completes(world):
    engine, lifecycle, dispatcher, _, _ = world
    sid = engine.submit(diamond()).session_id
    a = run(lifecycle, sid, "a")
    assert a.step_input.initial_context == {"lang": "python"}
    released = lifecycle.succeed(a, StepResult({"from": "a"})).released
    assert [step for step, _ in released] == ["c"]
    b = run(lifecycle, sid, "b")
    assert [step for step, _ in lifecycle.succeed(b, StepResult({"from": "b"})).released] == ["d"]
    d = run(lifecycle, sid, "d")
    assert d.step_input.dependencies == {"a": {"from": "a"}, "b": {"from": "b"}}
    assert dispatcher.step_ids == ["a", "b", "c", "d"]


def test_a_duplicate_completion_is_recorded_once(world):
    engine, lifecycle, _, _, _ = world
    sid = engine.submit(diamond()).session_id
    a = run(lifecycle, sid, "a")
    assert lifecycle.succeed(a, StepResult(1)).code == "ok"
    assert lifecycle.succeed(a, StepResult(2)).code == "duplicate"
    snap = engine.snapshot(sid)
    assert snap.completed_tasks == 1 and snap.results[f"{sid}.a"] == 1
    assert isinstance(lifecycle.begin(sid, "a", R), Skip)


def test_a_live_lease_blocks_a_second_run_and_an_expired_one_is_taken_over(world):
    engine, lifecycle, _, clock, _ = world
    sid = engine.submit(diamond()).session_id
    first = run(lifecycle, sid, "a")
    blocked = lifecycle.begin(sid, "a", R)
    assert isinstance(blocked, Skip) and blocked.retry_after_s == pytest.approx(10.1)
    clock.advance(11)
    second = run(lifecycle, sid, "a")
    assert second.attempt == 2
    assert lifecycle.succeed(first, StepResult("late")).code == "stale"
    assert lifecycle.succeed(second, StepResult("ok")).code == "ok"


def test_a_refused_claim_and_a_late_completion_write_no_log_entry(any_redis, world):
    # a duplicate delivery meeting the live lease, and the run that lost its lease finishing
    # late, change nothing: not even the session's log (its SSE stream)
    engine, lifecycle, _, clock, _ = world
    sid = engine.submit(diamond()).session_id
    first = run(lifecycle, sid, "a")
    assert isinstance(lifecycle.begin(sid, "a", R), Skip)  # leased
    clock.advance(11)
    second = run(lifecycle, sid, "a")
    assert lifecycle.succeed(first, StepResult("late")).code == "stale"
    assert lifecycle.succeed(second, StepResult("ok")).code == "ok"
    entries = any_redis.xrange(Keys("t").session_logs(sid))
    about_a = [f[b"message"].decode() for _, f in entries if f.get(b"taskId") == b"a"]
    assert about_a.count("Step started") == 2 and about_a.count("Step completed") == 1
    everywhere = any_redis.xrange(Keys("t").global_logs)
    assert len([f for _, f in everywhere if f.get(b"sessionId") == sid.encode()]) == len(entries)


def test_session_completes_when_every_step_completes_and_load_returns_to_zero(world):
    engine, lifecycle, _, _, registry = world
    sid = engine.submit(diamond()).session_id
    assert load(world) == 2  # a and b reserved on the only researcher when routed
    expected_after = {"a": 2, "b": 2, "c": 1, "d": 0}  # each completion releases c, then d
    for step_id in "abcd":
        claimed = run(lifecycle, sid, step_id)
        lifecycle.succeed(claimed, StepResult(step_id))
        assert load(world) == expected_after[step_id]
    snap = engine.snapshot(sid)
    assert snap.status == "completed" and snap.end_time is not None
    assert set(snap.results) == set(snap.job_ids)
    assert load(world) == 0


def test_fail_fast_cancels_everything_not_started(world):
    engine, lifecycle, _, _, registry = world
    sid = engine.submit(diamond()).session_id
    a = run(lifecycle, sid, "a")
    b = run(lifecycle, sid, "b")
    lifecycle.fail(a, ValueError("bad input"))
    snap = engine.snapshot(sid)
    assert snap.status == "failed"
    assert {s: snap.steps[s].status for s in "acd"} == {
        "a": "failed",
        "c": "cancelled",
        "d": "cancelled",
    }
    assert snap.errors[0].step_id == "a" and "bad input" in snap.errors[0].message
    assert lifecycle.succeed(b, StepResult("b")).released == []
    assert engine.snapshot(sid).steps["d"].status == "cancelled"
    assert load(world) == 0


def test_continue_policy_skips_dependents_and_lets_independent_branches_finish(world):
    engine, lifecycle, _, _, _ = world
    sid = engine.submit(diamond("continue")).session_id
    a, b = run(lifecycle, sid, "a"), run(lifecycle, sid, "b")
    lifecycle.fail(b, ValueError("b broke"))
    assert engine.snapshot(sid).status == "executing"
    assert engine.snapshot(sid).steps["d"].status == "skipped"
    lifecycle.succeed(a, StepResult("a"))
    c = run(lifecycle, sid, "c")
    lifecycle.succeed(c, StepResult("c"))
    snap = engine.snapshot(sid)
    assert snap.status == "failed" and snap.completed_tasks == 2 and snap.failed_tasks == 1


def test_a_retryable_error_requeues_with_backoff_until_attempts_run_out(world):
    engine, lifecycle, dispatcher, _, _ = world
    sid = engine.submit(diamond()).session_id
    first = run(lifecycle, sid, "a")
    assert lifecycle.fail(first, RetryableStepError("rate limited")).code == "ok"
    assert engine.snapshot(sid).steps["a"].status == "queued"
    assert dispatcher.sent[-1] == (dispatcher.sent[-1][0], 0.5)
    second = run(lifecycle, sid, "a")
    assert second.attempt == 2
    lifecycle.fail(second, RetryableStepError("rate limited"))
    snap = engine.snapshot(sid)
    assert snap.steps["a"].status == "failed" and snap.steps["a"].attempts == 2


def test_state_updates_reach_steps_that_start_later(world):
    engine, lifecycle, _, _, _ = world
    sid = engine.submit(diamond()).session_id
    lifecycle.succeed(run(lifecycle, sid, "a"), StepResult("a", {"findings": ["jwt"]}))
    assert run(lifecycle, sid, "c").step_input.shared_state == {"findings": ["jwt"]}


def test_an_output_that_is_not_json_fails_the_step_with_a_clear_error(world):
    engine, lifecycle, _, _, _ = world
    sid = engine.submit(diamond()).session_id
    lifecycle.succeed(run(lifecycle, sid, "a"), StepResult({"x": float("nan")}))
    snap = engine.snapshot(sid)
    assert snap.steps["a"].status == "failed" and "JSON" in snap.steps["a"].error


def test_cancel_stops_everything_not_started_refuses_running_results_and_is_idempotent(world):
    engine, lifecycle, dispatcher, _, _ = world
    sid = engine.submit(diamond()).session_id
    a = run(lifecycle, sid, "a")
    snap = engine.cancel(sid)
    assert snap.status == "cancelled" and snap.end_time
    assert {k: v.status for k, v in snap.steps.items()} == {s: "cancelled" for s in "abcd"}
    assert dispatcher.revoked == [f"{sid}.a"]
    assert lifecycle.succeed(a, StepResult("late")).code == "stale"
    assert isinstance(lifecycle.begin(sid, "b", R), Skip)
    assert engine.cancel(sid).status == "cancelled" and dispatcher.revoked == [f"{sid}.a"]
    assert load(world) <= 1  # only the revoked run's lease, which lapses by itself


def test_a_finished_session_cannot_be_cancelled(world):
    from orchestrator.core.errors import SessionFinishedError

    engine, lifecycle, _, _, _ = world
    sid = engine.submit(diamond()).session_id
    lifecycle.fail(run(lifecycle, sid, "a"), ValueError("x"))
    with pytest.raises(SessionFinishedError):
        engine.cancel(sid)
