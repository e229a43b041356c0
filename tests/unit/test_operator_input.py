"""Operator input: a step waits holding nothing, answers are validated, deadlines apply."""

import pytest

from orchestrator.core.errors import InputValidationError, SessionFinishedError, StepNotWaitingError
from orchestrator.core.models import AgentDefinition, Capability, OrchestrateRequest
from orchestrator.core.step_runs import StepRun
from orchestrator.core.steps import InputRequired, StepResult
from orchestrator.settings import Settings
from tests.support.world import build_world

ASKER = AgentDefinition(
    id="asker", name="asker", type="t", max_load=1, capabilities=[Capability(name="ask")]
)
SCHEMA = {"type": "object", "properties": {"approve": {"type": "boolean"}}, "required": ["approve"]}


@pytest.fixture
def world(any_redis):
    return build_world(any_redis, Settings(input_timeout_s=60), agents=(ASKER,))


def submit(world, *step_ids):
    steps = [{"id": s, "title": s, "requiredCapabilities": ["ask"]} for s in step_ids]
    request = OrchestrateRequest.model_validate({"goal": "g", "plan": {"steps": steps}})
    return world.engine.submit(request).session_id


def ask(world, sid, step_id, **kwargs):
    run = world.lifecycle.begin(sid, step_id, "asker")
    assert isinstance(run, StepRun) and not run.step_input.input_provided
    world.lifecycle.await_input(run, InputRequired("Deploy?", schema=SCHEMA, **kwargs))
    return run


def test_a_waiting_step_holds_no_slot_and_the_agent_runs_other_steps(world):
    sid = submit(world, "a")
    ask(world, sid, "a")
    snap = world.engine.snapshot(sid)
    assert snap.status == "waiting_for_input" and snap.steps["a"].status == "waiting_for_input"
    assert snap.steps["a"].input_request["question"] == "Deploy?"
    assert world.registry.get("asker", world.now_ms()).current_load == 0
    other = submit(world, "b")
    run = world.lifecycle.begin(other, "b", "asker")
    assert isinstance(run, StepRun)
    world.lifecycle.succeed(run, StepResult("b done"))
    assert world.engine.snapshot(other).status == "completed"


def test_a_valid_answer_resumes_the_step_with_the_answer(world):
    sid = submit(world, "a")
    ask(world, sid, "a")
    with pytest.raises(InputValidationError) as caught:
        world.engine.provide_input(sid, "a", {"approve": "yes"})
    assert caught.value.details["errors"][0]["location"] == "value.approve"
    assert world.engine.snapshot(sid).steps["a"].status == "waiting_for_input"
    snap = world.engine.provide_input(sid, "a", {"approve": True})
    assert snap.status == "executing" and snap.steps["a"].status == "queued"
    assert snap.steps["a"].agent_id == "asker"
    rerun = world.lifecycle.begin(sid, "a", "asker")
    assert rerun.step_input.input_provided and rerun.step_input.operator_input == {"approve": True}
    world.lifecycle.succeed(rerun, StepResult(rerun.step_input.operator_input))
    assert world.engine.snapshot(sid).status == "completed"
    with pytest.raises(SessionFinishedError):
        world.engine.provide_input(sid, "a", {"approve": True})


def test_answering_a_step_that_asked_nothing_is_a_conflict(world):
    sid = submit(world, "a", "b")
    ask(world, sid, "a")
    with pytest.raises(StepNotWaitingError):
        world.engine.provide_input(sid, "b", {"approve": True})


def test_a_missed_deadline_applies_the_default_or_fails_the_step(world):
    sid = submit(world, "with_default", "without")
    ask(world, sid, "with_default", timeout_s=5, default={"approve": False})
    ask(world, sid, "without", timeout_s=5)
    reconciler = world.reconciler
    assert reconciler.run_once() == []
    world.clock.advance(6)
    outcomes = {step: outcome for _, step, outcome in reconciler.run_once()}
    assert outcomes == {"with_default": "input_default", "without": "input_timeout"}
    snap = world.engine.snapshot(sid)
    assert snap.steps["without"].status == "failed" and "deadline" in snap.steps["without"].error
    assert snap.status == "failed"  # fail_fast: the default-answered step is cancelled with it
