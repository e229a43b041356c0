"""Retrying a session in place (issue 22): a failed or cancelled session's failed, skipped and
cancelled steps run again in the same session; completed steps keep their results and never run
again; the counters, status, retention and snapshot (round) follow; what cannot be retried is a
409 and an unknown session a 404."""

from __future__ import annotations

import pytest

from api import create_app
from orchestrator.core.errors import (
    PermanentStepError,
    SessionNotFoundError,
    SessionNotRetryableError,
)
from orchestrator.core.models import OrchestrateRequest
from orchestrator.core.step_runs import StepRun
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from orchestrator.store.keys import Keys
from tests.support.recording import RecordingDispatcher
from tests.support.world import build_world


def plan(*steps):
    return {
        "steps": [
            {"id": s, "title": s, "requiredCapabilities": ["web_research"], "dependsOn": list(d)}
            for s, *d in steps
        ]
    }


@pytest.fixture
def world(any_redis):
    settings = Settings(step_max_attempts=1, session_retention_s=3600)
    return build_world(any_redis, settings, prefix=settings.key_prefix)


def submit(world, *steps, policy="fail_fast"):
    body = {"goal": "g", "plan": plan(*steps), "failurePolicy": policy}
    return world.engine.submit(OrchestrateRequest.model_validate(body)).session_id


def run(world, sid, step_id, ok=True):
    agent = world.sessions.step_record(sid, step_id)["agentId"]
    started = world.lifecycle.begin(sid, step_id, agent)
    assert isinstance(started, StepRun), started
    if ok:
        world.lifecycle.succeed(started, StepResult({"from": step_id}))
    else:
        world.lifecycle.fail(started, PermanentStepError(f"{step_id} broke"))


def test_a_failed_session_reruns_only_what_did_not_complete(world, any_redis):
    sid = submit(world, ("A",), ("B", "A"), ("C", "B"), ("D", "A"), policy="continue")
    run(world, sid, "A")
    run(world, sid, "D")
    run(world, sid, "B", ok=False)
    failed = world.engine.snapshot(sid)
    assert failed.status == "failed" and failed.steps["C"].status == "skipped"
    assert any_redis.pttl(Keys().results(sid)) > 0  # retention started
    dispatched = len(world.dispatcher.step_ids)
    again = world.engine.retry(sid)
    assert again.status == "executing" and again.round == 1
    assert again.end_time is None
    assert (again.completed_tasks, again.failed_tasks) == (2, 0)
    assert again.steps["B"].status == "queued" and again.steps["B"].round == 1
    assert again.steps["B"].attempts == 0 and again.steps["B"].error is None
    assert again.steps["C"].status == "pending" and again.steps["C"].round == 1
    assert again.steps["A"].status == "completed" and again.steps["A"].round is None
    assert again.results[f"{sid}.A"] == {"from": "A"}  # kept, not recomputed
    assert any_redis.pttl(Keys().results(sid)) == -1  # its keys live on while it runs
    # only B was dispatched: A and D completed and never run again
    assert world.dispatcher.step_ids[dispatched:] == ["B"]
    run(world, sid, "B")
    run(world, sid, "C")
    done = world.engine.snapshot(sid)
    assert done.status == "completed"
    assert (done.completed_tasks, done.failed_tasks, done.total_tasks) == (4, 0, 4)
    assert [e.step_id for e in done.errors] == ["B"]  # the first round's error is history
    logs = [e["message"] for e in world.sessions._logbook.session_entries(sid)]
    assert "Session retried (round 1)" in logs


def test_a_cancelled_session_runs_its_cancelled_steps_again(world):
    sid = submit(world, ("A",), ("B", "A"))
    world.engine.cancel(sid)
    again = world.engine.retry(sid)
    assert again.status == "executing" and again.steps["A"].status == "queued"
    run(world, sid, "A")
    run(world, sid, "B")
    assert world.engine.snapshot(sid).status == "completed"


def test_what_cannot_be_retried(world):
    sid = submit(world, ("A",))
    with pytest.raises(SessionNotRetryableError, match="executing"):
        world.engine.retry(sid)
    run(world, sid, "A")
    with pytest.raises(SessionNotRetryableError, match="completed"):
        world.engine.retry(sid)
    with pytest.raises(SessionNotFoundError):
        world.engine.retry("orch-1-missing")


def test_the_route(world, any_redis):
    client = create_app(
        world.engine.settings, redis_client=any_redis, dispatcher=RecordingDispatcher()
    ).test_client()
    sid = submit(world, ("A",))
    busy = client.post(f"/api/orchestrator/sessions/{sid}/retry")
    assert busy.status_code == 409
    assert busy.get_json()["error"]["code"] == "session_not_retryable"
    run(world, sid, "A", ok=False)
    retried = client.post(f"/api/orchestrator/sessions/{sid}/retry")
    assert retried.status_code == 200 and retried.get_json()["round"] == 1
    assert client.post("/api/orchestrator/sessions/orch-1-x/retry").status_code == 404
