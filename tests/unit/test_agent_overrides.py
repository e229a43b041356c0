"""agentOverrides (issue 21): a session, or an experiment's variant, pins a capability to an
agent. Its steps go there (at submit, when a completion releases them, and from the waiting list,
which hands them only to that agent), a pinned agent that is not eligible leaves the policy's
ranking with a note saying why, a fallback after a failure on the pinned agent still works, and
bad shapes are 422s on both routes."""

import pytest

from api import create_app
from orchestrator.core.errors import PermanentStepError
from orchestrator.core.experiments import ExperimentRequest
from orchestrator.core.models import (
    AgentDefinition,
    AgentUpdate,
    Capability,
    OrchestrateRequest,
)
from orchestrator.core.statuses import AgentStatus
from orchestrator.core.step_runs import StepRun
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from tests.support.recording import RecordingDispatcher
from tests.support.world import build_world

ADMIN = "admin-token-0123456789"


def agent(agent_id: str, max_load: int = 5) -> AgentDefinition:
    return AgentDefinition(
        id=agent_id,
        name=agent_id,
        type="t",
        max_load=max_load,
        capabilities=[Capability(name="work")],
    )


@pytest.fixture
def world(any_redis):
    settings = Settings(step_max_attempts=1, retry_backoff_s=0, circuit_failure_threshold=100)
    # least_loaded picks a1 on a tie (by id): every pin below is to a2, against the policy
    return build_world(any_redis, settings, agents=(agent("a1"), agent("a2", max_load=1)))


def plan(*steps):
    return {
        "steps": [
            {"id": s, "title": s, "requiredCapabilities": ["work"], "dependsOn": list(deps)}
            for s, *deps in steps
        ]
    }


def submit(world, steps, **fields):
    body = {"goal": "g", "plan": plan(*steps), "failurePolicy": "continue", **fields}
    return world.engine.submit(OrchestrateRequest.model_validate(body))


def run(world, sid, step_id):
    record = world.sessions.step_record(sid, step_id)
    started = world.lifecycle.begin(sid, step_id, record["agentId"])
    assert isinstance(started, StepRun), started
    return started


def test_pinned_steps_go_to_their_agent_and_wait_only_for_its_capacity(world):
    pins = {"agentOverrides": {"work": "a2"}}
    first = submit(world, [("a",), ("b", "a")], **pins)
    assert first.agent_overrides == {"work": "a2"}
    assert first.steps["a"].agent_id == "a2"
    why = world.engine.snapshot(first.session_id).steps["a"].routing
    assert why["agentId"] == "a2" and "pinned" in why["notes"]["a2"]
    # a2 (maxLoad 1) is full: a second pinned session waits although a1 is free
    second = submit(world, [("x",)], **pins)
    assert second.steps["x"].agent_id is None
    assert world.sessions.step_record(second.session_id, "x")["waitingFor"] == "capacity"
    # a slot freed on a1 is not handed to the step pinned to a2
    free = submit(world, [("f",)])
    assert free.steps["f"].agent_id == "a1"
    world.lifecycle.succeed(run(world, free.session_id, "f"), StepResult("done"))
    assert world.sessions.step_record(second.session_id, "x").get("agentId") is None
    # a's completion releases b, routed by the Python router (the script leaves pinned sessions
    # to it), and frees a2's slot, which goes to the first waiting entry: x
    world.lifecycle.succeed(run(world, first.session_id, "a"), StepResult("done"))
    assert world.sessions.step_record(second.session_id, "x")["agentId"] == "a2"
    b = world.sessions.step_record(first.session_id, "b")
    assert b.get("agentId") is None and b["waitingFor"] == "capacity"
    world.lifecycle.succeed(run(world, second.session_id, "x"), StepResult("done"))
    assert world.sessions.step_record(first.session_id, "b")["agentId"] == "a2"
    # an unpinned session still follows the policy
    assert submit(world, [("y",)]).steps["y"].agent_id == "a1"


def test_a_pinned_agent_that_cannot_take_the_step_leaves_the_policys_choice(world):
    world.registry.update("a2", AgentUpdate(status=AgentStatus.DRAINING), world.now_ms())
    snap = submit(world, [("a",)], agentOverrides={"work": "a2"})
    assert snap.steps["a"].agent_id == "a1"
    note = world.engine.snapshot(snap.session_id).steps["a"].routing["notes"]["a2"]
    assert note == "pinned for work but it is draining; ranked by the policy instead"
    gone = submit(world, [("a",)], agentOverrides={"work": "nobody"})
    assert gone.steps["a"].agent_id == "a1"
    note = world.engine.snapshot(gone.session_id).steps["a"].routing["notes"]["nobody"]
    assert "not registered" in note
    # a capability the step does not need pins nothing
    other = submit(world, [("a",)], agentOverrides={"elsewhere": "a2"})
    assert other.steps["a"].agent_id == "a1"
    assert world.engine.snapshot(other.session_id).steps["a"].routing is None


def test_a_step_that_failed_on_its_pinned_agent_falls_back(any_redis):
    settings = Settings(step_max_attempts=1, circuit_failure_threshold=100)
    world = build_world(any_redis, settings, agents=(agent("a1"), agent("a2")))
    snap = submit(world, [("a",)], agentOverrides={"work": "a2"})
    world.lifecycle.fail(run(world, snap.session_id, "a"), PermanentStepError("bad"))
    record = world.sessions.step_record(snap.session_id, "a")
    assert record["agentId"] == "a1" and record["failedAgents"] == ["a2"]
    note = world.engine.snapshot(snap.session_id).steps["a"].routing["notes"]["a2"]
    assert "the step already failed on it" in note


def test_an_experiment_variant_pins_agents_over_the_sessions_own(world):
    world.engine.experiments.create(
        ExperimentRequest.model_validate(
            {
                "name": "pin",
                "variants": [
                    {"name": "policy"},
                    {"name": "a2", "agentOverrides": {"work": "a2"}},
                ],
            }
        )
    )
    seen = set()
    for _ in range(16):
        snap = submit(world, [("s",)], experiment="pin", agentOverrides={"other": "a1"})
        variant = snap.experiment["variant"]
        seen.add(variant)
        if variant == "a2":
            assert snap.agent_overrides == {"other": "a1", "work": "a2"}
        else:
            assert snap.agent_overrides == {"other": "a1"}
            assert snap.steps["s"].agent_id == "a1"
        if snap.steps["s"].agent_id:
            world.lifecycle.succeed(run(world, snap.session_id, "s"), StepResult("ok"))
    assert seen == {"policy", "a2"}
    assert world.sessions.step_record(snap.session_id, "s")["status"] == "completed"


@pytest.mark.parametrize(
    "overrides, location",
    [
        ({"Not A Cap": "a1"}, "body.agentOverrides.Not A Cap.[key]"),
        ({"work": "bad id!"}, "body.agentOverrides.work"),
        ({f"c{i}": "a1" for i in range(33)}, "body.agentOverrides"),
        (["work", "a1"], "body.agentOverrides"),
    ],
)
def test_bad_overrides_are_422s_saying_where(fake_redis, overrides, location):
    settings = Settings(api_tokens=f"ops:admin:{ADMIN}")
    client = create_app(
        settings, redis_client=fake_redis, dispatcher=RecordingDispatcher()
    ).test_client()
    admin = {"Authorization": f"Bearer {ADMIN}"}
    body = {"goal": "g", "agentOverrides": overrides}
    response = client.post("/api/orchestrator/orchestrate", json=body, headers=admin)
    assert response.status_code == 422
    errors = response.get_json()["error"]["details"]["errors"]
    assert location in [e["location"] for e in errors]
    experiment = {
        "name": "e",
        "variants": [{"name": "a"}, {"name": "b", "agentOverrides": overrides}],
    }
    response = client.post("/api/orchestrator/experiments", json=experiment, headers=admin)
    assert response.status_code == 422
    errors = response.get_json()["error"]["details"]["errors"]
    assert any(e["location"].startswith("body.variants.1.agentOverrides") for e in errors)
