"""Every key in Redis is one Keys knows, and retention reaches every key a session owns.

On a real redis-server (the scripts run there as in production), in-process with a manual clock:
a session with a sub-plan, a retried step, an operator input request, shared, private and
temporary state, a lock and a failure; a second session whose steps wait for capacity, are
recovered by the reconciler, and are cancelled, with a late delivery. Afterwards a SCAN (here, in
the test only) finds no key outside the families of Keys; every key of both ended sessions
expires within the retention, and once it has passed nothing of them is left.
"""

import time

import pytest

from orchestrator.core.errors import PermanentStepError, RetryableStepError
from orchestrator.core.models import AgentDefinition, AgentExecutor, Capability, OrchestrateRequest
from orchestrator.core.step_runs import StepRun
from orchestrator.core.steps import InputRequired, StepResult
from orchestrator.settings import Settings
from orchestrator.store.keys import FAMILIES, Keys
from orchestrator.store.state import StateManager, StateType
from tests.support.world import build_world

RETENTION_S = 3
SETTINGS = Settings(
    session_retention_s=RETENTION_S,
    step_max_attempts=2,
    retry_backoff_s=0.5,
    lease_s=10,
    reservation_s=60,
    input_timeout_s=600,
)
WORKER, ASKER = "worker-1", "asker-1"
AGENTS = (
    AgentDefinition(
        id=WORKER, name=WORKER, type="t", max_load=2, capabilities=[Capability(name="work")]
    ),
    AgentDefinition(
        id=ASKER, name=ASKER, type="t", max_load=1, capabilities=[Capability(name="ask")]
    ),
)
UNHOSTED = AgentDefinition(  # registered over the API, run by nothing yet: steps wait for it
    id="later-1",
    name="later-1",
    type="t",
    executor=AgentExecutor.LLM,
    capabilities=[Capability(name="later")],
)
SESSION_OWNED = {family.name for family in FAMILIES if family.session_owned}


def step(step_id: str, capability: str = "work", *deps: str) -> dict:
    return {
        "id": step_id,
        "title": step_id,
        "requiredCapabilities": [capability],
        "dependsOn": list(deps),
    }


def submit(world, user: str, policy: str, *steps: dict) -> str:
    body = {"goal": "inventory", "userId": user, "failurePolicy": policy, "plan": {"steps": steps}}
    return world.engine.submit(OrchestrateRequest.model_validate(body)).session_id


def begin(world, sid: str, step_id: str, agent_id: str = WORKER) -> StepRun:
    run = world.lifecycle.begin(sid, step_id, agent_id)
    assert isinstance(run, StepRun), (step_id, run)
    return run


def keys_by_family(client, keys: Keys) -> dict[str, str | None]:
    """Every key in Redis (SCAN) and its Keys family (None: no family makes it)."""
    return {k.decode(): keys.family_of(k.decode()) for k in client.scan_iter(count=1000)}


def session_of(key: str, keys: Keys) -> str:
    return key.removeprefix(f"{keys.prefix}:session:{{").split("}", 1)[0]


def a_session_with_a_subplan_a_retry_an_input_request_state_a_lock_and_a_failure(world, state):
    sid = submit(world, "alice", "continue", step("P"), step("Q", "ask"), step("R", "work", "P"))
    state.set(sid, "tone", "formal")
    state.set(sid, "draft", {"v": 1}, type=StateType.PRIVATE, agent_id=WORKER)
    state.set(sid, "scratch", 1, type=StateType.TEMPORARY, ttl_s=3600)
    lock = state.lock(sid, "report", ttl_s=RETENTION_S, blocking_timeout_s=0)
    assert lock.acquire()
    # Q asks an operator, and waits holding nothing
    world.lifecycle.await_input(begin(world, sid, "Q", ASKER), InputRequired("Go?", timeout_s=300))
    # P returns a sub-plan: P.a, then P.b
    world.lifecycle.succeed(
        begin(world, sid, "P"), StepResult(subtasks=[step("a"), step("b", "work", "a")])
    )
    world.lifecycle.fail(begin(world, sid, "P.a"), RetryableStepError("flaky"))
    world.clock.advance(1)
    world.lifecycle.succeed(begin(world, sid, "P.a"), StepResult("a"))
    world.lifecycle.succeed(begin(world, sid, "P.b"), StepResult("b"))
    world.lifecycle.succeed(begin(world, sid, "P"), StepResult("p"))
    world.lifecycle.fail(begin(world, sid, "R"), PermanentStepError("broken"))
    world.engine.provide_input(sid, "Q", "yes")
    world.lifecycle.succeed(begin(world, sid, "Q", ASKER), StepResult("q"))
    snapshot = world.engine.snapshot(sid)
    assert snapshot.status == "failed" and snapshot.steps["R"].status == "failed"
    assert snapshot.steps["P"].status == "completed" and snapshot.steps["Q"].status == "completed"
    return sid


def a_session_that_waits_for_capacity_is_recovered_and_cancelled(world):
    world.registry.create_remote(UNHOSTED, now_ms=world.now_ms())
    sid = submit(world, "bob", "fail_fast", step("X"), step("Y"), step("Z"), step("U", "later"))
    assert world.sessions.step_record(sid, "Z").get("waitingFor") == "capacity"
    assert world.sessions.step_record(sid, "U").get("waitingFor") == "agent"
    assert world.sessions.due_schedule_deadlines(world.now_ms() + 10**9) == [(sid, "U")]
    world.clock.advance(SETTINGS.reservation_s + 1)  # X and Y were never claimed
    assert {code for _, _, code in world.reconciler.run_once()} == {"reroute"}
    world.engine.cancel(sid)
    assert world.lifecycle.begin(sid, "X", WORKER).reason.startswith("ended")  # a late delivery
    world.router.offer_capacity(WORKER)  # drops what still waits for the cancelled session
    assert world.engine.snapshot(sid).status == "cancelled"
    return sid


def test_every_key_is_one_keys_knows_and_retention_reaches_every_key_a_session_owns(real_redis):
    # Given a fleet, and two sessions that went through most of what a session can do
    world = build_world(real_redis, SETTINGS, agents=AGENTS, prefix="inv")
    keys = world.sessions.keys
    state = StateManager(real_redis, keys, clock=world.clock)
    first = a_session_with_a_subplan_a_retry_an_input_request_state_a_lock_and_a_failure(
        world, state
    )
    second = a_session_that_waits_for_capacity_is_recovered_and_cancelled(world)

    # When every key is listed
    found = keys_by_family(real_redis, keys)

    # Then each is under the prefix and made by one family of Keys
    unknown = sorted(key for key, family in found.items() if family is None)
    assert not unknown, f"keys no Keys family makes: {unknown}"
    seen = set(found.values())
    assert {
        "subplans",
        "answers",
        "errors",
        "private_state",
        "temporary_state",
        "lock",
        "session_logs",
        "sessions_by_user",
        "step_counts",
    } <= seen, "the sessions went through less than this test is about"
    # and nothing waits for an agent any more: the cancel forgot the schedule deadline
    assert "schedule_deadlines" not in seen
    # and every key of the ended sessions expires within the retention
    owned = {key: family for key, family in found.items() if family in SESSION_OWNED}
    assert {session_of(key, keys) for key in owned} == {first, second}
    for key in owned:
        assert 0 < real_redis.pttl(key) <= RETENTION_S * 1000, key
    for sid in (first, second):
        for key in keys.session_owned(sid):
            assert real_redis.exists(key) == 0 or real_redis.pttl(key) > 0, key

    # When the retention has passed
    deadline = time.monotonic() + RETENTION_S + 10
    while any(real_redis.exists(key) for key in owned) and time.monotonic() < deadline:
        time.sleep(0.1)
    world.sessions.housekeep(now_ms=world.now_ms() + 3_600_000, retention_ms=RETENTION_S * 1000)

    # Then nothing of the sessions is left: no key they own, no index entry naming them
    left = keys_by_family(real_redis, keys)
    assert not [key for key, family in left.items() if family in SESSION_OWNED]
    assert not [key for key, family in left.items() if family is None]
    for key, family in left.items():
        if real_redis.type(key) == b"zset":
            members = {m.decode() for m in real_redis.zrange(key, 0, -1)}
            assert not {first, second} & members, (key, family)


@pytest.mark.parametrize("prefix", ["inv", "my:app"])
def test_the_scripts_make_their_keys_under_the_configured_prefix_only(real_redis, prefix):
    world = build_world(real_redis, SETTINGS, agents=AGENTS, prefix=prefix)
    sid = submit(world, "carol", "fail_fast", step("A"), step("B", "work", "A"))
    world.lifecycle.succeed(begin(world, sid, "A"), StepResult("a"))
    world.lifecycle.succeed(begin(world, sid, "B"), StepResult("b"))
    found = keys_by_family(real_redis, world.sessions.keys)
    assert all(key.startswith(f"{prefix}:") for key in found), sorted(found)
    assert None not in found.values(), sorted(k for k, f in found.items() if f is None)
