"""The chaos checker (tools/chaos_check.py) on fakeredis: it finds nothing wrong in a cluster
whose sessions ran cleanly, and reports each kind of damage done to that state by hand."""

from __future__ import annotations

import json
import time

import pytest

from api import create_app
from orchestrator.core.errors import PermanentStepError
from orchestrator.core.logentry import LogEntry
from orchestrator.core.models import AgentDefinition, Capability, OrchestrateRequest
from orchestrator.core.step_runs import StepRun
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from orchestrator.store.keys import Keys
from tests.support.recording import RecordingDispatcher
from tests.support.world import build_world
from tools.chaos_agents import chaos_output
from tools.chaos_check import Checker, markdown

KEYS = Keys("meowstik")
AGENT = AgentDefinition(
    id="chaos-py-a", name="A", type="chaos", max_load=2, capabilities=[Capability(name="chaos_py")]
)


class FlaskHttp:
    """The checker's Http over Flask's test client (the app on the same fakeredis)."""

    def __init__(self, app) -> None:
        self.client = app.test_client()

    def get(self, path, params=None):
        response = self.client.get(path, query_string=params or {})
        return response.status_code, response.get_data(as_text=True)


@pytest.fixture
def cluster(fake_redis):
    settings = Settings()
    world = build_world(fake_redis, settings, agents=(AGENT,), prefix=KEYS.prefix)
    app = create_app(settings, redis_client=fake_redis, dispatcher=RecordingDispatcher())
    return world, Checker(FlaskHttp(app), fake_redis, KEYS), fake_redis


def submit(world, steps: dict[str, list[str]]) -> str:
    plan = [
        {"id": s, "title": s, "requiredCapabilities": ["chaos_py"], "dependsOn": deps}
        for s, deps in steps.items()
    ]
    request = OrchestrateRequest.model_validate({"goal": "chaos", "plan": {"steps": plan}})
    return world.engine.submit(request).session_id


def run_to_the_end(world, sid: str) -> None:
    """Claim and complete routed steps, as a worker would, until none is left."""
    while True:
        steps = world.sessions.read(sid).steps
        routed = [s for s, rec in steps.items() if rec["status"] == "queued" and rec.get("agentId")]
        if not routed:
            return
        for step_id in routed:
            run = world.lifecycle.begin(sid, step_id, steps[step_id]["agentId"])
            assert isinstance(run, StepRun), run
            deps = run.step_input.dependencies
            output = chaos_output(sid, step_id, run.agent_id, run.attempt, deps)
            world.lifecycle.succeed(run, StepResult(output))


def check(checker, expected):
    return checker.run(set(expected), wait_s=0, settle_s=0)


def test_a_cleanly_finished_cluster_has_no_finding(cluster):
    # Given two sessions, a chain and a diamond, run to completion
    world, checker, _ = cluster
    chain = submit(world, {"a": [], "b": ["a"], "c": ["b"]})
    diamond = submit(world, {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]})
    for sid in (chain, diamond):
        run_to_the_end(world, sid)
    # When the checker reads the API and Redis
    report = check(checker, {chain, diamond})
    # Then it finds nothing, and counts what happened
    assert report["findings"] == []
    assert report["figures"]["sessionsByStatus"] == {"completed": 2}
    assert report["figures"]["steps"] == 7 and report["figures"]["reExecutions"] == 0
    assert report["figures"]["logEntries"]["Step completed"] == 7
    assert "findings: 0" in markdown(report)


def test_a_failed_session_is_a_finding_unless_its_error_type_is_accepted(cluster):
    # Given a session whose first step failed for good after it had started
    world, checker, _ = cluster
    sid = submit(world, {"a": [], "b": ["a"]})
    run = world.lifecycle.begin(sid, "a", "chaos-py-a")
    assert isinstance(run, StepRun)
    world.lifecycle.fail(run, PermanentStepError("the agent gave up"))
    # When the checker runs
    report = check(checker, {sid})
    # Then the failure is the one finding (its counts, duration histogram included, add up)
    assert report["findings"] == [
        f"session {sid}: failed: a PermanentStepError: the agent gave up (attempts 1, recoveries 0)"
    ]
    # and none when that error type is accepted
    accepted = checker.run({sid}, wait_s=0, settle_s=0, accepted_failures={"PermanentStepError"})
    assert accepted["findings"] == []


def test_each_kind_of_damage_is_a_finding(cluster):
    # Given finished sessions, one left running, and damage done by hand
    world, checker, client = cluster
    first = submit(world, {"a": [], "b": ["a"]})
    second = submit(world, {"a": [], "b": ["a"]})
    for sid in (first, second):
        run_to_the_end(world, sid)
    stuck = submit(world, {"a": []})
    client.hdel(KEYS.results(first), "b")  # a lost result
    foreign = chaos_output(first, "a", "chaos-py-a", 1, {})
    client.hset(KEYS.results(second), "a", json.dumps(foreign))  # someone else's result
    lease_until_ms = int(time.time() * 1000) + 600_000
    client.zadd(KEYS.agent_slots("chaos-py-a"), {f"{second}|b": lease_until_ms})  # never freed
    client.zadd(KEYS.deadlines, {f"{second}|a": 1})
    client.rpush(KEYS.waiting("chaos_py"), f"{second}|b")
    client.set(KEYS.lock(second, "tally"), "token", px=60_000)
    client.rpush(KEYS.broker("agent.chaos-py-a"), "{}")
    client.hincrby(KEYS.step_counts, "chaos_py|completed", 1)  # a completion counted twice
    client.hincrby(KEYS.agent_metrics("chaos-py-a"), "succeeded", 1)  # one success too many
    client.zadd(KEYS.sessions_by_status("executing"), {first: 1})  # in two status indexes
    client.persist(KEYS.session(second))
    entry = LogEntry("info", "task", "Step completed", session_id=second, task_id="a")
    world.sessions.log(entry, world.now_ms())  # a second completion in the log
    # When the checker runs, expecting also a session that does not exist
    report = check(checker, {first, second, stuck, "orch-never-stored"})
    # Then each is a precise finding
    findings = "\n".join(report["findings"])
    expected = [
        f"session {first} step b: completed but has no result",
        f"session {second} step a: its result belongs to session {first} step a",
        f"session {stuck}: still executing when the check ended; open steps: a queued on "
        "chaos-py-a (attempts 0)",
        "session orch-never-stored: accepted (202) but GET /sessions/orch-never-stored answers 404",
        f"{KEYS.agent_slots('chaos-py-a')}: slot {second}|b left (session completed",
        f"{KEYS.deadlines}: {second}|a left (session completed)",
        f"{KEYS.waiting('chaos_py')}: waiting entry {second}|b left",
        f"{KEYS.lock(second, 'tally')}: lock left",
        f"{KEYS.broker('agent.chaos-py-a')}: 1 message(s) still queued",
        f"session {second} step a: 'Step completed' entries: 2",
        f"session {second}: completed but its keys never expire (TTL -1)",
        '/metrics meowstik_steps_total{capability="chaos_py",outcome="completed"} = 5, but the '
        "records say 4 completed chaos_py steps",
        '/metrics meowstik_agent_runs_total{agent="chaos-py-a",outcome="succeeded"} = 5, but '
        "the records say 4 steps completed by chaos-py-a",
        f"session {first}: completed, but in the status indexes ['completed', 'executing']",
        '/metrics meowstik_sessions{status="executing"} = 2, but the records say 1 executing',
        "GET /api/orchestrator/agents: chaos-py-a currentLoad",
        "GET /api/orchestrator/stats: usedCapacity",
    ]
    missing = [line for line in expected if line not in findings]
    assert not missing, f"not reported: {missing}\nreported:\n{findings}"
