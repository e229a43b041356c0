"""Routing, slots, waiting and handoff, and the circuit breaker, on both Redis backends."""

import pytest

from orchestrator.core.errors import PermanentStepError
from orchestrator.core.models import AgentDefinition, AgentUpdate, Capability, OrchestrateRequest
from orchestrator.core.selection import POLICIES, rank
from orchestrator.core.statuses import AgentStatus
from orchestrator.core.step_runs import StepRun
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from tests.support.world import build_world


def agent(agent_id, *, max_load=1, priority=0, caps=("work",), type_="worker"):
    return AgentDefinition(
        id=agent_id,
        name=agent_id,
        type=type_,
        max_load=max_load,
        priority=priority,
        capabilities=[Capability(name=c) for c in caps],
    )


SETTINGS = Settings(
    lease_s=10,
    step_max_attempts=1,
    circuit_failure_threshold=2,
    circuit_window_s=60,
    circuit_cooldown_s=30,
    max_fallbacks=1,
)


@pytest.fixture
def world(any_redis):
    return build_world(
        any_redis,
        SETTINGS,
        agents=(agent("a1", max_load=1, priority=5), agent("a2", max_load=1, priority=1)),
    )


def submit(world, count, capability="work", policy="fail_fast"):
    steps = [
        {"id": f"s{i}", "title": "s", "requiredCapabilities": [capability]} for i in range(count)
    ]
    request = OrchestrateRequest.model_validate(
        {"goal": "g", "plan": {"steps": steps}, "failurePolicy": policy}
    )
    return world.engine.submit(request).session_id


def step_states(world, sid):
    return world.engine.snapshot(sid).steps


def test_steps_go_to_the_preferred_agent_until_it_is_full_then_wait(world):
    sid = submit(world, 3)
    states = step_states(world, sid)
    # least_loaded: equal load, so priority decides a1 first, then a2 has the lower load
    assert (states["s0"].agent_id, states["s1"].agent_id) == ("a1", "a2")
    assert states["s2"].waiting_for == "capacity" and states["s2"].agent_id is None
    assert [(d.step_id, d.queue) for d, _ in world.dispatcher.sent] == [
        ("s0", "agent.a1"),
        ("s1", "agent.a2"),
    ]


def test_a_released_slot_is_handed_to_the_waiting_step_in_the_same_call(world):
    sid = submit(world, 3)
    run = world.lifecycle.begin(sid, "s0", "a1")
    assert isinstance(run, StepRun)
    world.lifecycle.succeed(run, StepResult("done"))
    states = step_states(world, sid)
    assert states["s2"].agent_id == "a1" and states["s2"].waiting_for is None
    assert world.dispatcher.sent[-1][0].step_id == "s2"
    assert world.registry.get("a1", world.now_ms()).current_load == 1


def test_a_claim_without_a_reservation_on_a_full_agent_is_refused(world):
    sid = submit(world, 3)
    assert world.lifecycle.begin(sid, "s2", "a1").reason == "not_ready:queued"  # still waiting
    other = submit(world, 1)
    refused = world.lifecycle.begin(other, "s0", "a1")
    assert refused.reason in {"full", "not_ready:queued"}


@pytest.mark.parametrize(
    "change", [AgentUpdate(status=AgentStatus.DRAINING), AgentUpdate(status=AgentStatus.INACTIVE)]
)
def test_draining_and_inactive_agents_get_no_new_steps(world, change):
    world.registry.update("a1", change, world.now_ms())
    sid = submit(world, 2)
    states = step_states(world, sid)
    assert states["s0"].agent_id == "a2" and states["s1"].waiting_for == "capacity"


def test_an_agent_whose_worker_stopped_heartbeating_is_offline_and_not_routed(any_redis):
    world = build_world(any_redis, SETTINGS, agents=())
    world.register(agent("a1"), alive_ms=1000)
    world.register(agent("a2"))
    world.clock.advance(2)
    assert world.registry.get("a1", world.now_ms()).status == AgentStatus.OFFLINE
    sid = submit(world, 1)
    assert step_states(world, sid)["s0"].agent_id == "a2"


def test_an_expired_slot_is_reaped_and_handed_on(world):
    sid = submit(world, 3)
    world.lifecycle.begin(sid, "s0", "a1")  # claimed, then its worker dies: no renewals
    world.clock.advance(11)  # past the 10 s lease; a2's reservation (60 s) still holds
    assert world.registry.get("a1", world.now_ms()).current_load == 0
    handed = world.sessions.reap_agent("a1", now_ms=world.now_ms(), reserve_ms=60_000)
    assert [(h.step_id, h.agent_id) for h in handed] == [("s2", "a1")]


def test_a_failed_step_falls_back_to_another_agent_and_is_logged_with_both(world):
    sid = submit(world, 1)
    run = world.lifecycle.begin(sid, "s0", "a1")
    world.lifecycle.fail(run, PermanentStepError("broken"))
    state = step_states(world, sid)["s0"]
    assert state.status == "queued" and state.agent_id == "a2" and state.failed_agents == ["a1"]
    fallback = [
        e
        for e in world.sessions._logbook.session_entries(sid)  # noqa: SLF001
        if "falling back" in e["message"]
    ]
    assert fallback[0]["data"]["fromAgent"] == "a1" and fallback[0]["data"]["toAgent"] == "a2"
    second = world.lifecycle.begin(sid, "s0", "a2")
    world.lifecycle.fail(second, PermanentStepError("also broken"))
    final = world.engine.snapshot(sid)
    assert final.status == "failed" and final.steps["s0"].status == "failed"


def test_repeated_failures_open_the_circuit_and_selection_skips_the_agent(any_redis):
    world = build_world(
        any_redis,
        SETTINGS,
        agents=(agent("a1", max_load=1, priority=5), agent("a2", max_load=5, priority=1)),
    )
    for _ in range(2):
        sid = submit(world, 1)
        run = world.lifecycle.begin(sid, "s0", world.engine.snapshot(sid).steps["s0"].agent_id)
        world.lifecycle.fail(run, PermanentStepError("broken"))
    a1 = world.registry.get("a1", world.now_ms())
    assert a1.circuit.state == "open"
    assert step_states(world, submit(world, 1))["s0"].agent_id == "a2"
    world.clock.advance(31)
    assert world.registry.get("a1", world.now_ms()).circuit.state == "closed"


def test_policies_order_candidates_as_documented(any_redis):
    world = build_world(
        any_redis,
        SETTINGS,
        agents=(
            agent("busy-high", max_load=4, priority=9),
            agent("idle-low", max_load=4, priority=1),
            agent("idle-mid", max_load=4, priority=5, caps=("work", "extra")),
        ),
    )
    sid = submit(world, 1)  # equal loads: least_loaded picks the highest priority, busy-high
    assert step_states(world, sid)["s0"].agent_id == "busy-high"
    agents = world.registry.list(world.now_ms())
    ids = lambda ranked: [a.id for a in ranked]  # noqa: E731
    assert ids(rank(agents, ["work"], policy="least_loaded")) == [
        "idle-mid",
        "idle-low",
        "busy-high",
    ]
    assert ids(rank(agents, ["work"], policy="priority_first"))[0] == "busy-high"
    rotations = {ids(rank(agents, ["work"], policy="round_robin", rotation=r))[0] for r in range(3)}
    assert rotations == {"busy-high", "idle-low", "idle-mid"}
    assert set(POLICIES) == {"least_loaded", "priority_first", "round_robin"}


def test_reactivating_a_drained_agent_hands_its_slots_to_waiting_steps_at_once(any_redis):
    world = build_world(any_redis, SETTINGS, agents=(agent("a1", max_load=2),))
    world.registry.update("a1", AgentUpdate(status=AgentStatus.DRAINING), world.now_ms())
    sid = submit(world, 2)
    # a draining agent is not eligible: the steps wait for an agent (with a schedule deadline)
    assert all(s.waiting_for == "agent" for s in step_states(world, sid).values())
    world.registry.update("a1", AgentUpdate(status=AgentStatus.ACTIVE), world.now_ms())
    handed = world.router.offer_capacity("a1")
    assert sorted(h.step_id for h in handed) == ["s0", "s1"]
    assert {s.agent_id for s in step_states(world, sid).values()} == {"a1"}
    assert sorted(d.step_id for d, _ in world.dispatcher.sent) == ["s0", "s1"]


def test_the_reconciler_reroutes_a_step_whose_worker_died_and_dead_letters_a_repeat_killer(
    any_redis,
):
    world = build_world(
        any_redis,
        Settings(lease_s=10, max_deliveries=2),
        agents=(agent("a1", max_load=1), agent("a2", max_load=1)),
    )
    reconciler = world.reconciler
    sid = submit(world, 1)
    first = world.engine.snapshot(sid).steps["s0"].agent_id
    world.lifecycle.begin(sid, "s0", first)  # the worker then dies: no renewal, no completion
    world.clock.advance(5)
    assert reconciler.run_once() == []  # lease still live
    world.clock.advance(6)
    assert reconciler.run_once() == [(sid, "s0", "reroute")]
    state = world.engine.snapshot(sid).steps["s0"]
    assert state.status == "queued" and state.agent_id is not None
    assert world.registry.get(first, world.now_ms()).current_load in (0, 1)
    world.lifecycle.begin(sid, "s0", state.agent_id)  # dies again
    world.clock.advance(11)
    assert reconciler.run_once() == [(sid, "s0", "dead")]
    final = world.engine.snapshot(sid)
    assert final.status == "failed" and "dead-lettered" in final.steps["s0"].error
    assert all(world.registry.get(a, world.now_ms()).current_load == 0 for a in ("a1", "a2"))


def test_a_step_whose_dispatch_was_lost_is_recovered(any_redis):
    world = build_world(any_redis, Settings(reservation_s=30), agents=(agent("a1"),))
    sid = submit(world, 1)  # routed and reserved, but say the message never reached Redis
    reconciler = world.reconciler
    world.clock.advance(31)
    assert reconciler.run_once() == [(sid, "s0", "reroute")]
    assert world.dispatcher.sent[-1][0].step_id == "s0"
    run = world.lifecycle.begin(sid, "s0", "a1")
    world.lifecycle.succeed(run, StepResult("ok"))
    assert world.engine.snapshot(sid).status == "completed"
    assert reconciler.run_once() == []
