"""Step timeouts: the fields and their limits, which timeout bounds a run, how a timed-out run is
recorded, and the worker's pieces (Celery's per-message limits, the soft-limit window, the lease
keeper abandoning a run where no limit can stop it). Real workers: tests/integration/
test_timeouts.py."""

from __future__ import annotations

import os
import signal
import threading
import time
from types import SimpleNamespace

import pytest
from billiard.pool import soft_timeout_sighandler
from celery.contrib.testing.mocks import TaskMessage
from celery.exceptions import SoftTimeLimitExceeded

from api import create_app
from orchestrator.core.fleet import DEFAULT_AGENTS
from orchestrator.core.models import (
    MAX_STEP_TIMEOUT_S,
    AgentDefinition,
    Capability,
    OrchestrateRequest,
)
from orchestrator.core.timeouts import TimeLimits, effective_timeout_s
from orchestrator.engine.timeouts import HARD_LIMIT
from orchestrator.settings import Settings
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.keys import Keys
from tests.support.cluster import wait_for
from tests.support.recording import RecordingDispatcher
from tests.support.world import build_world
from workers.agents.base import agent
from workers.celery_app import RUN_STEP_TASK, create_celery_app
from workers.runtime import WorkerRuntime
from workers.time_limits import (
    RUN_TOKEN_FIELD,
    TIMEOUT_FIELD,
    RunLimits,
    SoftLimitWindow,
    StepRequest,
)

HTTP_AGENT = {
    "id": "timed-001",
    "name": "Timed",
    "type": "specialist",
    "capabilities": [{"name": "timed_work"}],
    "endpoint": "http://127.0.0.1:8080/step",
}


def api_client(fake_redis):
    registry = AgentRegistry(fake_redis, Keys("meowstik"))
    for definition in DEFAULT_AGENTS:
        registry.register(definition, worker="w1", now_ms=0, alive_ms=10**13)
    app = create_app(Settings(), redis_client=fake_redis, dispatcher=RecordingDispatcher())
    return app.test_client()


def error_location(response) -> str:
    assert response.status_code == 422, response.get_data(as_text=True)
    return response.get_json()["error"]["details"]["errors"][0]["location"]


BAD_TIMEOUTS = [-1, 0, MAX_STEP_TIMEOUT_S + 1, "soon", True]


@pytest.mark.parametrize("bad", BAD_TIMEOUTS)
def test_an_agent_registration_with_a_bad_timeout_is_a_422_naming_the_field(fake_redis, bad):
    client = api_client(fake_redis)
    response = client.post("/api/orchestrator/agents", json={**HTTP_AGENT, "timeoutS": bad})
    assert error_location(response) == "body.timeoutS"


@pytest.mark.parametrize("bad", BAD_TIMEOUTS)
def test_a_plan_step_with_a_bad_timeout_is_a_422_naming_the_field(fake_redis, bad):
    client = api_client(fake_redis)
    step = {"id": "s", "title": "s", "requiredCapabilities": ["research"], "timeoutS": bad}
    body = {"goal": "g", "plan": {"steps": [step]}}
    response = client.post("/api/orchestrator/orchestrate", json=body)
    assert error_location(response).endswith("timeoutS")


def test_an_agent_timeout_is_registered_changed_by_patch_and_removed_by_null(fake_redis):
    client = api_client(fake_redis)
    created = client.post("/api/orchestrator/agents", json={**HTTP_AGENT, "timeoutS": 90})
    assert created.status_code == 201 and created.get_json()["timeoutS"] == 90
    url = "/api/orchestrator/agents/timed-001"
    assert error_location(client.patch(url, json={"timeoutS": -5})) == "body.timeoutS"
    assert client.patch(url, json={"timeoutS": 2.5}).get_json()["timeoutS"] == 2.5
    assert client.patch(url, json={"priority": 3}).get_json()["timeoutS"] == 2.5
    assert client.patch(url, json={"timeoutS": None}).get_json().get("timeoutS") is None
    assert client.get(url).get_json().get("timeoutS") is None


@pytest.mark.parametrize(
    "step_s, agent_s, default_s, expected",
    [
        (2.0, 5.0, 9.0, 2.0),
        (None, 5.0, 9.0, 5.0),
        (None, None, 9.0, 9.0),
        (None, None, None, None),
        (2.0, None, None, 2.0),
    ],
)
def test_the_step_timeout_wins_then_the_agents_then_the_setting(
    step_s, agent_s, default_s, expected
):
    assert effective_timeout_s(step_s, agent_s, default_s) == expected


def test_celery_gets_the_soft_limit_at_the_timeout_and_the_hard_one_a_grace_later():
    assert TimeLimits.of(3.0, 5.0).celery() == (8.0, 3.0)


def timed_agent(agent_id: str, timeout_s: float | None) -> AgentDefinition:
    return AgentDefinition(
        id=agent_id,
        name=agent_id,
        type="worker",
        capabilities=[Capability(name="work")],
        timeout_s=timeout_s,
    )


def submit(world, *steps: dict, max_attempts: int = 3) -> str:
    request = OrchestrateRequest.model_validate(
        {"goal": "g", "plan": {"steps": list(steps)}, "maxAttempts": max_attempts}
    )
    return world.engine.submit(request).session_id


def plan_step(step_id: str, timeout_s: float | None = None) -> dict:
    step = {"id": step_id, "title": step_id, "requiredCapabilities": ["work"]}
    return step if timeout_s is None else {**step, "timeoutS": timeout_s}


def test_a_runs_limit_is_read_from_the_stored_step_and_agent_then_the_setting(any_redis):
    world = build_world(
        any_redis,
        Settings(step_timeout_s=9),
        agents=(timed_agent("slow", 5), timed_agent("x", None)),
    )
    sid = submit(world, plan_step("own", 2), plan_step("inherits"))
    timeouts = world.lifecycle.timeouts
    assert timeouts.limit_s(sid, "own", "slow") == 2
    assert timeouts.limit_s(sid, "inherits", "slow") == 5
    assert timeouts.limit_s(sid, "inherits", "x") == 9
    bare = build_world(any_redis, Settings(), agents=(timed_agent("x", None),), prefix="u")
    assert bare.lifecycle.timeouts.limit_s(submit(bare, plan_step("s")), "s", "x") is None


def entries(world, sid: str, message: str) -> list[dict]:
    logs = world.sessions._logbook.session_entries(sid)  # noqa: SLF001
    return [entry for entry in logs if entry["message"] == message]


def test_a_killed_runs_timeout_is_recorded_only_with_its_own_token(any_redis):
    world = build_world(any_redis, Settings(), agents=(timed_agent("a1", None),))
    sid = submit(world, plan_step("s", 2))
    run = world.lifecycle.begin(sid, "s", "a1", token="0123456789abcdef")
    assert run.token == "0123456789abcdef"
    stale = world.lifecycle.timeouts.time_out_killed(
        sid, "s", "a1", token="fedcba9876543210", timeout_s=2
    )
    assert stale.code == "stale" and world.engine.snapshot(sid).steps["s"].status == "running"

    recorded = world.lifecycle.timeouts.time_out_killed(
        sid, "s", "a1", token=run.token, timeout_s=2
    )

    assert recorded.code == "ok"
    step = world.engine.snapshot(sid).steps["s"]
    assert step.status == "queued" and step.agent_id == "a1"  # retried on its agent
    assert "StepTimeoutError: step timed out after 2 s" in step.error
    (timed_out,) = entries(world, sid, "Step timed out")
    assert timed_out["data"] == {"timeoutS": 2, "stoppedBy": HARD_LIMIT, "attempt": 1}
    assert entries(world, sid, "Step retrying")
    (retry, countdown_s) = world.dispatcher.sent[-1]
    assert retry.step_id == "s" and countdown_s > 0
    again = world.lifecycle.timeouts.time_out_killed(sid, "s", "a1", token=run.token, timeout_s=2)
    assert again.code == "stale"  # recorded once


def test_a_run_timing_out_on_its_last_attempt_fails_the_step_with_step_timeout_error(any_redis):
    world = build_world(any_redis, Settings(), agents=(timed_agent("a1", None),))
    sid = submit(world, plan_step("s", 2), max_attempts=1)
    run = world.lifecycle.begin(sid, "s", "a1")
    world.lifecycle.timeouts.time_out_killed(sid, "s", "a1", token=run.token, timeout_s=2)
    snapshot = world.engine.snapshot(sid)
    assert snapshot.status == "failed"
    (error,) = snapshot.errors
    assert error.error_type == "StepTimeoutError" and "timed out after 2 s" in error.message


class FakeTimeouts:
    """The engine's StepTimeouts as the worker's main process uses it."""

    def __init__(self, limit_s: float | None = 4.0, fail: bool = False) -> None:
        self.limit, self.fail = limit_s, fail
        self.killed: list[tuple] = []

    def limit_s(self, session_id, step_id, agent_id):
        if self.fail:
            raise ConnectionError("redis down")
        return self.limit

    def time_out_killed(self, session_id, step_id, agent_id, *, token, timeout_s):
        self.killed.append((session_id, step_id, agent_id, token, timeout_s))
        return type("T", (), {"code": "ok"})()


def step_request(timeouts, args=("sess-1", "step-1", "agent-1"), **headers) -> StepRequest:
    app = create_celery_app(Settings(step_timeout_grace_s=2))
    app.conf.meowstik_timeouts = timeouts
    message = TaskMessage(RUN_STEP_TASK, args=list(args), **headers)
    return StepRequest(message, app=app, task=app.tasks[RUN_STEP_TASK])


def test_a_step_message_gets_its_limits_and_a_fresh_token_whatever_its_headers_say():
    request = step_request(
        FakeTimeouts(4.0), timelimit=(1000, 900), **{RUN_TOKEN_FIELD: "forged", TIMEOUT_FIELD: 99}
    )
    assert request.time_limits == (6.0, 4.0)  # (hard, soft): the timeout, then the grace
    limits = RunLimits.of(SimpleNamespace(**request.request_dict))  # the task's request
    assert limits.timeout_s == 4.0 and limits.token and limits.token != "forged"


@pytest.mark.parametrize(
    "timeouts, args",
    [
        (FakeTimeouts(None), ("sess-1", "step-1", "agent-1")),
        (FakeTimeouts(fail=True), ("sess-1", "step-1", "agent-1")),
        (FakeTimeouts(4.0), ("sess-1", "step-1", None)),
        (FakeTimeouts(4.0), ("../x", "step-1", "agent-1")),
        (None, ("sess-1", "step-1", "agent-1")),
    ],
)
def test_a_step_message_runs_without_limits_when_none_applies_or_none_can_be_read(timeouts, args):
    request = step_request(timeouts, args)
    assert request.time_limits == (None, None)
    assert request.request_dict[TIMEOUT_FIELD] is None


def test_a_hard_time_limit_records_the_killed_runs_timeout_with_its_token():
    timeouts = FakeTimeouts(4.0)
    request = step_request(timeouts)
    request.time_limits  # noqa: B018 - decided when Celery hands the message to the pool
    request.on_timeout(soft=True, timeout=4.0)
    assert timeouts.killed == []  # the soft limit is the agent's to handle
    request.on_timeout(soft=False, timeout=6.0)
    token = request.request_dict[RUN_TOKEN_FIELD]
    assert timeouts.killed == [("sess-1", "step-1", "agent-1", token, 4.0)]


@pytest.fixture
def billiard_soft_handler():
    """SIGUSR1 handled as in a prefork pool process (billiard raises SoftTimeLimitExceeded)."""
    previous = signal.signal(signal.SIGUSR1, soft_timeout_sighandler)
    yield
    signal.signal(signal.SIGUSR1, previous)


def soft_limit() -> None:
    """What the worker's main process does at the soft limit."""
    os.kill(os.getpid(), signal.SIGUSR1)


def test_the_soft_limit_raises_inside_the_agent_only(billiard_soft_handler):
    with SoftLimitWindow() as window:
        assert window.enforced
        with pytest.raises(SoftTimeLimitExceeded), window.agent():
            soft_limit()
            threading.Event().wait(10)  # interrupted at once
        assert window.fired
    with SoftLimitWindow() as window:
        soft_limit()  # during the claim: only noted
        assert window.passed and not window.fired
        with pytest.raises(SoftTimeLimitExceeded), window.agent():
            pytest.fail("the agent must not start after its limit passed")
    assert signal.getsignal(signal.SIGUSR1) is soft_timeout_sighandler


def test_outside_a_prefork_pool_process_the_window_changes_nothing():
    with SoftLimitWindow() as window, window.agent():
        assert not window.enforced


def runtime_world(redis_client, agent_object):
    """A worker runtime hosting ``agent_object`` and a world over the same Redis."""
    agents = (agent_object.definition,)
    world = build_world(redis_client, Settings(), agents=agents, prefix="meowstik")
    world.clock.now_s = time.time()  # the runtime's clock is the system's
    world.register(*agents)
    hosted = {agent_object.definition.id: agent_object}
    return world, WorkerRuntime(Settings(), hosted, redis_client, world.dispatcher)


def test_a_prefork_runs_soft_limit_fails_it_as_timed_out_and_frees_it(
    fake_redis, billiard_soft_handler
):
    @agent(id="hung-001", name="Hung", type="worker", capabilities=["work"])
    def hung(step_input):
        soft_limit()
        threading.Event().wait(10)

    world, runtime = runtime_world(fake_redis, hung)
    sid = submit(world, plan_step("s", 3))
    runtime.execute(sid, "s", "hung-001", RunLimits("00112233445566aa", 3.0))
    step = world.engine.snapshot(sid).steps["s"]
    assert step.status == "queued" and "timed out after 3 s" in step.error
    assert entries(world, sid, "Step timed out")[0]["data"]["stoppedBy"] == "soft_limit"


def test_in_a_pool_without_limits_a_run_past_its_timeout_is_abandoned_and_its_outcome_dropped(
    fake_redis,
):
    release = threading.Event()

    @agent(id="hung-002", name="Hung", type="worker", capabilities=["work"])
    def hung(step_input):
        release.wait(30)
        return {"late": True}

    world, runtime = runtime_world(fake_redis, hung)
    sid = submit(world, plan_step("s"))
    run = threading.Thread(
        target=runtime.execute, args=(sid, "s", "hung-002", RunLimits(None, 0.2)), daemon=True
    )
    run.start()
    # the log entry is written just before the failure is recorded (and the step is queued
    # before the run claims it): wait for the record, a queued step carrying the error
    step = wait_for(
        lambda: (s := world.engine.snapshot(sid).steps["s"]).error and s,
        10,
        what="the timeout recorded",
    )
    assert step.status == "queued" and "timed out after 0.2 s" in step.error
    assert entries(world, sid, "Step timed out")[0]["data"]["stoppedBy"] == "abandoned"
    release.set()
    run.join(10)
    assert entries(world, sid, "Timed-out run ended; its outcome is dropped")
    assert world.engine.snapshot(sid).steps["s"].status == "queued"  # not completed by it
