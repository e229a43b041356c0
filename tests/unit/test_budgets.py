"""Budgets on the domain (issue 20): the gate before each model call and each step start, the
holds of calls in flight, the pause as an operator-input request holding no slot, and the three
ways it ends (a raise, stop, the deadline). Model calls are recorded the way the tool loop
records them (TurnJournal.record_call), so what is spent is what the counters say."""

from decimal import Decimal

import pytest

from orchestrator.core.chat import Usage
from orchestrator.core.errors import BudgetValueError, InputValidationError, SessionFinishedError
from orchestrator.core.models import AgentDefinition, BudgetRequest, Capability, OrchestrateRequest
from orchestrator.core.step_runs import Skip, StepRun
from orchestrator.core.steps import StepResult
from orchestrator.engine.budgets import CallRefused
from orchestrator.settings import Settings
from orchestrator.store.keys import Keys
from orchestrator.store.turns import TurnJournal
from tests.support.world import build_world

CHAT = AgentDefinition(
    id="chat", name="chat", type="t", max_load=10, capabilities=[Capability(name="chat")]
)
CALL_PICO = 10_000_000  # $0.00001 a call
CALL_TOKENS = Usage(30, 10, 40)


@pytest.fixture
def world(any_redis):
    world = build_world(any_redis, Settings(budget_decision_timeout_s=60), agents=(CHAT,))
    world.journal = TurnJournal(any_redis, Keys("t"))
    world.client = any_redis
    return world


def submit(world, *step_ids, budget=None):
    steps = [{"id": s, "title": s, "requiredCapabilities": ["chat"]} for s in step_ids]
    body = {"goal": "g", "plan": {"steps": steps}}
    if budget is not None:
        body["budget"] = budget
    return world.engine.submit(OrchestrateRequest.model_validate(body)).session_id


def gate(world, run, call):
    world.lifecycle.budgets.before_call(
        run.session_id,
        run.step_id,
        run.agent_id,
        token=run.token,
        hold=f"{run.step_id}|chat|c{call}",
        model="m",
    )


def record(world, run, call, pico=CALL_PICO):
    world.journal.bound(run.session_id, run.step_id, "chat").record_call(
        f"c{call}",
        {"kind": "model", "reply": {}},
        model="m",
        usage=CALL_TOKENS,
        cost_pico=pico,
        now_ms=world.now_ms(),
    )


def call(world, run, number, pico=CALL_PICO):
    gate(world, run, number)
    record(world, run, number, pico)


def messages_of(world, sid):
    return [entry["message"] for entry in world.sessions._logbook.session_entries(sid)]


def begin(world, sid, step_id):
    run = world.lifecycle.begin(sid, step_id, "chat")
    assert isinstance(run, StepRun), run
    return run


def test_calls_within_the_budget_run_and_the_one_that_would_cross_it_parks_the_step(world):
    sid = submit(world, "a", budget={"maxCostUsd": 0.000025})
    run = begin(world, sid, "a")
    call(world, run, 1)
    call(world, run, 2)  # $0.00002 spent; a third would make $0.00003
    with pytest.raises(CallRefused):
        gate(world, run, 3)
    snap = world.engine.snapshot(sid)
    assert snap.status == "waiting_for_input" and snap.steps["a"].status == "waiting_for_input"
    request = snap.steps["a"].input_request
    assert request["reason"] == "budget" and request["onTimeout"] == "stop"
    assert request["question"].startswith("Budget $0.000025 reached after $0.00002 spent.")
    assert snap.budget.paused and snap.budget.spent_usd == "0.00002"
    assert snap.budget.max_cost_usd == "0.000025" and snap.budget.spent_tokens == 80
    # the parked step holds no slot, and its run does not count as an attempt
    assert world.registry.get("chat", world.now_ms()).current_load == 0
    assert snap.steps["a"].attempts == 0
    messages = messages_of(world, sid)
    assert "Budget reached" in messages and "Step waiting for input" in messages


def test_a_raise_resumes_every_parked_step_and_stop_is_refused_afterwards(world):
    sid = submit(world, "a", "b", budget={"maxCostUsd": 0.00001})
    a, b = begin(world, sid, "a"), begin(world, sid, "b")
    call(world, a, 1)
    for run in (a, b):
        with pytest.raises(CallRefused):
            gate(world, run, 1 if run is b else 2)
    snap = world.engine.snapshot(sid)
    assert {s.status for s in snap.steps.values()} == {"waiting_for_input"}
    # an answer that does not raise above what was spent is refused, saying why
    with pytest.raises(BudgetValueError) as low:
        world.engine.provide_input(sid, "b", {"raiseTo": 0.00001})
    assert low.value.details["errors"][0]["location"] == "value.raiseTo"
    with pytest.raises(InputValidationError):
        world.engine.provide_input(sid, "b", {"raiseTo": "lots"})
    snap = world.engine.provide_input(sid, "b", {"raiseTo": 0.001})
    assert snap.status == "executing" and not snap.budget.paused
    assert snap.budget.max_cost_usd == "0.001"
    assert {s.status for s in snap.steps.values()} == {"queued"}
    assert sorted(m.step_id for m, _ in world.dispatcher.sent[-2:]) == ["a", "b"]
    # the operator's answer is the session's, not the steps' own input
    rerun = begin(world, sid, "a")
    assert not rerun.step_input.input_provided and rerun.attempt == 1
    messages = messages_of(world, sid)
    assert messages.count("Budget reached") == 1 and "Budget raised" in messages


def test_stop_fails_the_session_with_budget_exceeded_and_the_figures(world):
    sid = submit(world, "a", "b", budget={"maxCostUsd": 0.00001})
    a = begin(world, sid, "a")
    call(world, a, 1)
    with pytest.raises(CallRefused):
        gate(world, a, 2)
    snap = world.engine.provide_input(sid, "a", {"stop": True})
    assert snap.status == "failed"
    assert snap.steps["a"].status == "failed" and snap.steps["b"].status == "cancelled"
    [error] = snap.errors
    assert error.error_type == "BudgetExceeded" and error.step_id == "a"
    assert error.job_id == f"{sid}.a"
    assert "$0.00001 spent of a $0.00001 budget" in error.message
    with pytest.raises(SessionFinishedError):
        world.engine.change_budget(sid, BudgetRequest(max_cost_usd=1))


def test_the_deadline_stops_the_session(world):
    sid = submit(world, "a", budget={"maxTokens": 50})
    a = begin(world, sid, "a")
    call(world, a, 1)  # 40 tokens; another call would make 80
    with pytest.raises(CallRefused):
        gate(world, a, 2)
    world.clock.advance(59)
    world.reconciler.run_once()
    assert world.engine.snapshot(sid).status == "waiting_for_input"
    world.clock.advance(2)
    world.reconciler.run_once()
    snap = world.engine.snapshot(sid)
    assert snap.status == "failed" and snap.errors[0].error_type == "BudgetExceeded"
    assert "40 tokens of 50" in snap.errors[0].message


def test_a_step_does_not_start_while_the_session_is_paused_or_spent(world):
    sid = submit(world, "a", "b", "c", budget={"maxCostUsd": 0.00001})
    a = begin(world, sid, "a")
    call(world, a, 1)  # the budget is spent exactly
    skip = world.lifecycle.begin(sid, "b", "chat")
    assert isinstance(skip, Skip) and skip.reason == "budget:parked"
    snap = world.engine.snapshot(sid)
    assert snap.steps["b"].status == "waiting_for_input" and snap.budget.paused
    assert snap.steps["b"].attempts == 0
    # a's run and c's reservation; b's reservation was freed
    assert world.registry.get("chat", world.now_ms()).current_load == 2
    world.lifecycle.succeed(a, StepResult("done"))
    skip = world.lifecycle.begin(sid, "c", "chat")
    assert isinstance(skip, Skip) and skip.reason == "budget:parked"
    assert world.registry.get("chat", world.now_ms()).current_load == 0
    # PATCH raising it resumes both
    snap = world.engine.change_budget(sid, BudgetRequest(max_cost_usd=0.1))
    assert snap.steps["b"].status == "queued" and snap.steps["c"].status == "queued"
    assert snap.status == "executing"


def test_a_call_whose_cost_is_unknown_waits_for_the_calls_in_flight(world):
    """Until one call to a model has cost something in the session, calls to it run one at a
    time; after that each holds the most a call cost, so parallel steps cannot all cross."""
    sid = submit(world, *"abcd", budget={"maxCostUsd": 0.000035})
    a, b, c, d = (begin(world, sid, s) for s in "abcd")
    gate(world, a, 1)  # a's first call is in flight, cost unknown
    waits = []
    world.lifecycle.budgets._sleep = lambda s: (waits.append(s), record(world, a, 1))
    gate(world, b, 1)  # busy until a's call is recorded
    assert waits and len(waits) == 1
    world.lifecycle.budgets._sleep = pytest.fail
    # b holds $0.00001; spent $0.00001: c fits ($0.00003), d would make $0.00004
    gate(world, c, 1)
    with pytest.raises(CallRefused):
        gate(world, d, 1)
    record(world, b, 1)
    record(world, c, 1)
    spent = Decimal(world.engine.snapshot(sid).budget.spent_usd)
    assert spent == Decimal("0.00003") <= Decimal("0.000035")


def test_a_failed_call_releases_its_hold_and_a_session_without_budget_is_not_gated(world):
    sid = submit(world, "a", "b", budget={"maxCostUsd": 0.00002})
    a, b = begin(world, sid, "a"), begin(world, sid, "b")
    call(world, a, 1)
    gate(world, a, 2)  # holds $0.00001: b's call would cross
    world.lifecycle.budgets.release_hold(sid, "a|chat|c2")
    gate(world, b, 1)
    free = submit(world, "x")
    run = begin(world, free, "x")
    for number in range(1, 5):
        call(world, run, number)
    assert world.engine.snapshot(free).budget is None


def test_patch_lowers_and_raises_limits_and_defaults_come_from_settings(any_redis):
    settings = Settings(
        budget_max_tokens=1000, user_budgets={"alice": BudgetRequest(max_cost_usd=2)}
    )
    world = build_world(any_redis, settings, agents=(CHAT,))
    plain = submit(world, "a")
    assert world.engine.snapshot(plain).budget.max_tokens == 1000
    body = {"goal": "g", "userId": "alice", "plan": {"steps": [{"id": "a", "title": "a",
            "requiredCapabilities": ["chat"]}]}}  # fmt: skip
    alice = world.engine.submit(OrchestrateRequest.model_validate(body)).session_id
    snap = world.engine.snapshot(alice)
    assert snap.budget.max_cost_usd == "2" and snap.budget.max_tokens is None
    snap = world.engine.change_budget(alice, BudgetRequest(max_tokens=10))
    assert (snap.budget.max_cost_usd, snap.budget.max_tokens) == ("2", 10)
    assert snap.status == "executing"
    messages = messages_of(world, alice)
    assert "Budget changed" in messages


def test_a_budget_needs_a_limit():
    with pytest.raises(ValueError, match="maxCostUsd"):
        BudgetRequest.model_validate({})
    with pytest.raises(ValueError):
        BudgetRequest.model_validate({"maxCostUsd": -1})


def test_a_raise_in_dollars_cannot_end_a_pause_on_tokens(world):
    sid = submit(world, "a", budget={"maxCostUsd": 1, "maxTokens": 40})
    a = begin(world, sid, "a")
    call(world, a, 1)  # 40 tokens: all of them
    with pytest.raises(CallRefused):
        gate(world, a, 2)
    with pytest.raises(BudgetValueError) as caught:
        world.engine.provide_input(sid, "a", {"raiseTo": 5})
    assert "raise maxTokens with PATCH" in caught.value.message
    snap = world.engine.change_budget(sid, BudgetRequest(max_tokens=1000))
    assert snap.steps["a"].status == "queued" and not snap.budget.paused


def test_no_model_call_is_made_for_a_cancelled_session_or_a_run_that_lost_its_step(world):
    sid = submit(world, "a", "b")  # no budget
    a, b = begin(world, sid, "a"), begin(world, sid, "b")
    call(world, a, 1)  # a session without a budget is not held back
    world.sessions._client.hset(Keys("t").steps(sid), "b", '{"status": "running", "token": "x"}')
    with pytest.raises(CallRefused) as stale:
        gate(world, b, 1)
    assert not stale.value.parked and "stale" in str(stale.value)
    world.engine.cancel(sid)
    with pytest.raises(CallRefused) as ended:
        gate(world, a, 2)
    assert not ended.value.parked and "ended (cancelled)" in str(ended.value)
