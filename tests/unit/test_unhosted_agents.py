"""Issue 18: an agent registered with nothing to run it is listed ``unhosted`` and never
selected; steps only it could take wait for an agent, holding nothing, and fail after
MEOWSTIK_SCHEDULE_TIMEOUT_S unless a worker hosting its id (or an LLM) appears. Both backends."""

import pytest

from api import create_app
from cli.ops_commands import render_agents
from cli.rendering import render_session
from orchestrator.core.availability import shown_status
from orchestrator.core.models import (
    AgentDefinition,
    AgentExecutor,
    Capability,
    OrchestrateRequest,
)
from orchestrator.core.statuses import AgentStatus
from orchestrator.core.step_runs import StepRun
from orchestrator.core.steps import StepResult
from orchestrator.engine.agents import Agents
from orchestrator.settings import Settings
from tests.support.recording import RecordingDispatcher
from tests.support.spec import SPEC_CUSTOM_AGENT_BODY
from tests.support.world import build_world

TIMEOUT_S = 300
SETTINGS = Settings(schedule_timeout_s=TIMEOUT_S, reservation_s=60, lease_s=10)
CUSTOM = "custom-agent-001"


def python_agent(agent_id: str, capability: str, *, max_load: int = 1) -> AgentDefinition:
    return AgentDefinition(
        id=agent_id,
        name=agent_id,
        type="specialist",
        max_load=max_load,
        capabilities=[Capability(name=capability)],
    )


@pytest.fixture
def world(any_redis):
    world = build_world(any_redis, SETTINGS, agents=(python_agent("worker-1", "work"),))
    Agents(world.router.context, world.router).register(dict(SPEC_CUSTOM_AGENT_BODY))
    world.client = any_redis
    return world


def submit(world, *steps: dict, policy: str = "fail_fast") -> str:
    body = {"goal": "custom", "plan": {"steps": list(steps)}, "failurePolicy": policy}
    return world.engine.submit(OrchestrateRequest.model_validate(body)).session_id


def step(step_id: str, capability: str = "custom_capability", *deps: str) -> dict:
    return {
        "id": step_id,
        "title": step_id,
        "requiredCapabilities": [capability],
        "dependsOn": [*deps],
    }


def schedule_deadlines(world) -> dict[str, int]:
    client, keys = world.client, world.sessions.keys
    found = client.zrange(keys.schedule_deadlines, 0, -1, withscores=True)
    return {member.decode(): int(score) for member, score in found}


def waiting_entries(world, capability: str = "custom_capability") -> list[bytes]:
    return world.client.lrange(world.sessions.keys.waiting(capability), 0, -1)


def test_the_spec_body_registers_unhosted_without_an_llm_and_is_never_selected(world):
    # Given the spec's custom agent, registered with no LLM and no worker hosting its id
    agent = world.registry.get(CUSTOM, world.now_ms())
    assert agent.status == AgentStatus.UNHOSTED and agent.executor == AgentExecutor.LLM
    assert "MEOWSTIK_LLM_BASE_URL" in (agent.waiting_for or "")
    # When a plan needs only its capability
    sid = submit(world, step("C"))
    # Then the step waits for an agent, with a schedule deadline, and nothing was sent
    state = world.engine.snapshot(sid).steps["C"]
    assert state.status == "queued" and state.agent_id is None
    assert state.waiting_for == "agent" and state.schedule_deadline is not None
    assert world.dispatcher.sent == []
    member = f"{sid}|C"
    assert schedule_deadlines(world) == {member: world.now_ms() + TIMEOUT_S * 1000}
    assert len(waiting_entries(world)) == 1
    assert world.registry.get(CUSTOM, world.now_ms()).current_load == 0
    logged = [e for e in world.sessions._logbook.session_entries(sid) if e.get("taskId") == "C"]
    assert logged[-1]["message"] == "Step waiting for an agent" and logged[-1]["level"] == "warn"


def test_the_submit_answer_already_says_the_step_waits_for_an_agent(world):
    snapshot = world.engine.submit(
        OrchestrateRequest.model_validate({"goal": "g", "plan": {"steps": [step("C")]}})
    )
    assert snapshot.steps["C"].waiting_for == "agent"
    assert (
        snapshot.steps["C"].schedule_deadline
        == world.engine.snapshot(snapshot.session_id).steps["C"].schedule_deadline
    )


def test_a_step_nobody_hosts_fails_with_the_schedule_timeout_message_and_leaves_no_waiting(world):
    sid = submit(world, step("C"))
    # Before the deadline the reconciler leaves it alone
    world.clock.advance(TIMEOUT_S - 1)
    assert world.reconciler.run_once() == []
    # When the clock passes MEOWSTIK_SCHEDULE_TIMEOUT_S
    world.clock.advance(2)
    assert world.reconciler.run_once() == [(sid, "C", "schedule_timeout")]
    # Then the step and the session failed, saying what it needs and how to fix it
    snapshot = world.engine.snapshot(sid)
    assert snapshot.status == "failed" and snapshot.steps["C"].status == "failed"
    assert snapshot.steps["C"].waiting_for is None
    error = snapshot.errors[-1]
    assert error.error_type == "ScheduleTimeout" and error.step_id == "C"
    for needed in (
        "custom_capability",
        "custom-agent-001 (unhosted)",
        "300 s",
        "MEOWSTIK_SCHEDULE_TIMEOUT_S",
        "meowstik worker --agents custom-agent-001",
        "MEOWSTIK_LLM_BASE_URL",
        "HTTP agent",
    ):
        assert needed in error.message, needed
    # and nothing of its waiting is left to be handed a slot later
    assert schedule_deadlines(world) == {} and waiting_entries(world) == []
    assert world.reconciler.run_once() == []
    entries = world.sessions._logbook.session_entries(sid)
    assert [e["message"] for e in entries][-2:] == ["Step schedule timed out", "Session finished"]


def test_a_worker_hosting_the_id_before_the_deadline_takes_the_step_and_clears_the_deadline(world):
    sid = submit(world, step("C"))
    world.clock.advance(TIMEOUT_S / 2)
    # When a `meowstik worker` whose modules define custom-agent-001 registers it
    hosted = python_agent(CUSTOM, "custom_capability", max_load=2)
    world.registry.register(hosted, worker="custom@host", now_ms=world.now_ms(), alive_ms=10**9)
    world.router.offer_capacity(CUSTOM)  # what its registration's first heartbeat does
    # Then its Python definition is the agent, active, and the step went to its queue
    agent = world.registry.get(CUSTOM, world.now_ms())
    assert agent.status == AgentStatus.ACTIVE and agent.executor == AgentExecutor.PYTHON
    assert agent.queue == f"agent.{CUSTOM}" and agent.waiting_for is None
    assert CUSTOM not in world.registry.remote_agent_ids()
    assert [(d.step_id, d.queue) for d, _ in world.dispatcher.sent] == [("C", f"agent.{CUSTOM}")]
    state = world.engine.snapshot(sid).steps["C"]
    assert state.agent_id == CUSTOM and state.waiting_for is None
    assert state.schedule_deadline is None
    assert schedule_deadlines(world) == {} and waiting_entries(world) == []
    # and it runs; the deadline passing later changes nothing
    run = world.lifecycle.begin(sid, "C", CUSTOM)
    assert isinstance(run, StepRun)
    world.lifecycle.succeed(run, StepResult("done"))
    world.clock.advance(TIMEOUT_S)
    assert world.reconciler.run_once() == []
    assert world.engine.snapshot(sid).status == "completed"


def test_a_hosting_worker_keeps_an_operators_inactive_status_and_drops_capabilities_it_lacks(
    any_redis,
):
    world = build_world(any_redis, SETTINGS, agents=())
    agents = Agents(world.router.context, world.router)
    body = {**SPEC_CUSTOM_AGENT_BODY, "status": "inactive"}
    body["capabilities"] = [*body["capabilities"], {"name": "other_capability"}]
    agents.register(body)
    hosted = python_agent(CUSTOM, "custom_capability")
    world.registry.register(hosted, worker="w", now_ms=world.now_ms(), alive_ms=10**9)
    agent = world.registry.get(CUSTOM, world.now_ms())
    assert agent.status == AgentStatus.INACTIVE and agent.capability_names == {"custom_capability"}
    assert world.registry.candidates(["other_capability"], world.now_ms()) == []


def test_a_busy_but_eligible_wait_never_times_out(world):
    # Given the only agent with `work` (maxLoad 1) busy
    busy = submit(world, step("B", "work"))
    waiting = submit(world, step("W", "work"))
    state = world.engine.snapshot(waiting).steps["W"]
    assert state.waiting_for == "capacity" and state.schedule_deadline is None
    assert schedule_deadlines(world) == {}
    # When far more than the schedule timeout passes (the busy run keeps its lease)
    run = world.lifecycle.begin(busy, "B", "worker-1")
    for _ in range(4):
        world.clock.advance(TIMEOUT_S / 2)
        world.sessions.renew_lease(
            busy, "B", token=run.token, lease_until_ms=world.now_ms() + 10_000, agent_id="worker-1"
        )
        assert world.reconciler.run_once() == []
    # Then the waiting step still waits, and runs when the slot frees
    assert world.engine.snapshot(waiting).steps["W"].status == "queued"
    world.lifecycle.succeed(run, StepResult("done"))
    assert world.engine.snapshot(waiting).steps["W"].agent_id == "worker-1"


def test_at_the_deadline_an_eligible_busy_agent_turns_the_wait_into_one_for_capacity(world):
    sid = submit(world, step("C"))
    # Given an agent with the capability that appeared full (its slot held by another step)
    hosted = python_agent("custom-2", "custom_capability")
    world.registry.register(hosted, worker="w2", now_ms=world.now_ms(), alive_ms=10**9)
    client, keys = world.client, world.sessions.keys
    client.zadd(keys.agent_slots("custom-2"), {"other|X": world.now_ms() + 10**9})
    # When the schedule deadline passes
    world.clock.advance(TIMEOUT_S + 1)
    assert world.reconciler.run_once() == [(sid, "C", "schedule_capacity")]
    # Then the step keeps waiting, for capacity now, with no deadline
    state = world.engine.snapshot(sid).steps["C"]
    assert state.status == "queued" and state.waiting_for == "capacity"
    assert state.schedule_deadline is None and schedule_deadlines(world) == {}
    # and gets the slot when it frees
    client.zrem(keys.agent_slots("custom-2"), "other|X")
    world.router.offer_capacity("custom-2")
    assert world.engine.snapshot(sid).steps["C"].agent_id == "custom-2"


def test_a_released_step_with_no_agent_waits_for_one_from_the_completing_call(world):
    sid = submit(world, step("A", "work"), step("C", "custom_capability", "A"))
    run = world.lifecycle.begin(sid, "A", "worker-1")
    world.lifecycle.succeed(run, StepResult("a"))
    state = world.engine.snapshot(sid).steps["C"]
    assert state.status == "queued" and state.waiting_for == "agent"
    assert schedule_deadlines(world) == {f"{sid}|C": world.now_ms() + TIMEOUT_S * 1000}
    world.clock.advance(TIMEOUT_S + 1)
    assert world.reconciler.run_once() == [(sid, "C", "schedule_timeout")]
    assert world.engine.snapshot(sid).errors[-1].error_type == "ScheduleTimeout"


def test_cancelling_a_session_forgets_its_waiting_steps(world):
    sid = submit(world, step("C"), step("D"))
    assert len(waiting_entries(world)) == 2
    world.engine.cancel(sid)
    assert schedule_deadlines(world) == {} and waiting_entries(world) == []


def test_under_continue_a_timed_out_step_skips_its_dependents_and_the_rest_finish(world):
    sid = submit(
        world, step("C"), step("D", "custom_capability", "C"), step("E", "work"), policy="continue"
    )
    world.lifecycle.succeed(world.lifecycle.begin(sid, "E", "worker-1"), StepResult("e"))
    world.clock.advance(TIMEOUT_S + 1)
    assert world.reconciler.run_once() == [(sid, "C", "schedule_timeout")]
    steps = world.engine.snapshot(sid).steps
    assert (steps["C"].status, steps["D"].status, steps["E"].status) == (
        "failed",
        "skipped",
        "completed",
    )


def test_a_remote_worker_without_an_llm_heartbeats_http_agents_only(any_redis):
    world = build_world(any_redis, SETTINGS, agents=())
    agents = Agents(world.router.context, world.router)
    agents.register(dict(SPEC_CUSTOM_AGENT_BODY))
    agents.register({**SPEC_CUSTOM_AGENT_BODY, "id": "hook-1", "endpoint": "http://127.0.0.1:9/x"})
    now = world.now_ms()
    # a `meowstik worker --remote` without MEOWSTIK_LLM_BASE_URL
    ids = world.registry.remote_agent_ids(llm=False)
    assert ids == ["hook-1"]
    world.registry.heartbeat(ids, worker="remote", now_ms=now, alive_ms=10_000, remote=True)
    assert world.registry.get("hook-1", now).status == AgentStatus.ACTIVE
    assert world.registry.get(CUSTOM, now).status == AgentStatus.UNHOSTED
    # an LLM agent registered now stays unhosted too; with an LLM-capable worker it is alive
    agents.register({**SPEC_CUSTOM_AGENT_BODY, "id": "llm-2"})
    assert world.registry.get("llm-2", now).status == AgentStatus.UNHOSTED
    ids = world.registry.remote_agent_ids(llm=True)
    assert ids == [CUSTOM, "hook-1", "llm-2"]
    world.registry.heartbeat(
        ids, worker="remote", now_ms=now, alive_ms=10_000, remote=True, llm=True
    )
    assert world.registry.get(CUSTOM, now).status == AgentStatus.ACTIVE
    agents.register({**SPEC_CUSTOM_AGENT_BODY, "id": "llm-3"})
    assert world.registry.get("llm-3", now).status == AgentStatus.ACTIVE


@pytest.mark.parametrize(
    "alive, ever_hosted, executor, shown",
    [
        (True, True, AgentExecutor.PYTHON, AgentStatus.DRAINING),
        (False, True, AgentExecutor.PYTHON, AgentStatus.OFFLINE),
        (False, True, AgentExecutor.HTTP, AgentStatus.OFFLINE),
        (False, False, AgentExecutor.HTTP, AgentStatus.UNHOSTED),
        (False, True, AgentExecutor.LLM, AgentStatus.UNHOSTED),
        (True, True, AgentExecutor.LLM, AgentStatus.DRAINING),
    ],
)
def test_the_shown_status_is_the_stored_one_while_alive_else_offline_or_unhosted(
    alive, ever_hosted, executor, shown
):
    assert (
        shown_status("draining", alive=alive, ever_hosted=ever_hosted, executor=executor) == shown
    )


def test_the_dashboard_and_the_cli_say_why_a_step_waits_and_list_the_agent_unhosted(fake_redis):
    settings = Settings()
    app = create_app(settings, redis_client=fake_redis, dispatcher=RecordingDispatcher())
    client = app.test_client()
    assert client.post("/api/orchestrator/agents", json=SPEC_CUSTOM_AGENT_BODY).status_code == 201
    body = {"goal": "custom", "plan": {"steps": [step("C")]}}
    sid = client.post("/api/orchestrator/orchestrate", json=body).get_json()["sessionId"]
    snapshot = client.get(f"/api/orchestrator/sessions/{sid}").get_json()
    deadline = snapshot["steps"]["C"]["scheduleDeadline"]
    assert snapshot["steps"]["C"]["waitingFor"] == "agent" and deadline
    page = client.get(f"/sessions/{sid}").get_data(as_text=True)
    assert f"waiting for an agent; fails at {deadline}" in page
    agents_page = client.get("/agents").get_data(as_text=True)
    assert 'class="badge agent-unhosted"' in agents_page
    rows = render_session(snapshot)
    assert any(f"queued (waiting for an agent until {deadline})" in row for row in rows)
    listing = client.get("/api/orchestrator/agents").get_json()["agents"]
    assert "unhosted" in "\n".join(render_agents(listing))
