"""Dynamic decomposition in the domain (fakeredis with Lua, manual clock): a running step returns
a sub-plan, which is scheduled under it; the step runs again with its subtasks' outputs; runaway
re-planning is stopped."""

import pytest

from orchestrator.core.errors import PermanentStepError
from orchestrator.core.models import OrchestrateRequest
from orchestrator.core.step_runs import StepRun
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from tests.support.world import build_world

AGENT = "researcher-001"


def step(step_id: str, *deps: str, capability: str = "web_research", **extra) -> dict:
    return {
        "id": step_id,
        "title": step_id,
        "requiredCapabilities": [capability],
        "dependsOn": list(deps),
        **extra,
    }


class Driver:
    """Runs steps by hand: begin (claim) and finish them with a chosen result."""

    def __init__(self, fake_redis, **settings):
        self.world = build_world(fake_redis, Settings(**settings))
        self.engine, self.life = self.world.engine, self.world.lifecycle

    def submit(self, *steps, policy="fail_fast") -> str:
        body = {"goal": "decompose", "plan": {"steps": list(steps)}, "failurePolicy": policy}
        return self.engine.submit(OrchestrateRequest.model_validate(body)).session_id

    def run(self, sid: str, step_id: str, result) -> StepRun:
        run = self.life.begin(sid, step_id, AGENT)
        assert isinstance(run, StepRun), run
        if isinstance(result, Exception):
            self.life.fail(run, result)
        else:
            self.life.succeed(run, result if isinstance(result, StepResult) else StepResult(result))
        return run

    def snapshot(self, sid):
        return self.engine.snapshot(sid)

    def statuses(self, sid):
        return {k: v.status for k, v in self.snapshot(sid).steps.items()}

    def logs(self, sid):
        return self.world.sessions._logbook.session_entries(sid)


@pytest.fixture
def driver(fake_redis):
    return Driver(fake_redis)


def test_a_returned_sub_plan_runs_under_its_step_which_then_finishes_with_their_outputs(driver):
    # Given R -> P -> D
    sid = driver.submit(step("R"), step("P", "R"), step("D", "P"))
    driver.run(sid, "R", {"from": "R"})
    # When P returns a sub-plan of a and b (b after a)
    driver.run(sid, "P", StepResult(subtasks=[step("a"), step("b", "a")]))
    # Then P waits for its new subtasks, which join the session under it
    snapshot = driver.snapshot(sid)
    assert driver.statuses(sid) == {
        "R": "completed",
        "P": "pending",
        "D": "pending",
        "P.a": "queued",
        "P.b": "pending",
    }
    assert snapshot.total_tasks == 5 and snapshot.steps["P"].decompositions == 1
    assert snapshot.steps["P"].subtask_ids == ["P.a", "P.b"]
    assert snapshot.steps["P.b"].parent_id == "P" and snapshot.steps["P.b"].depends_on == [
        "R",
        "P.a",
    ]
    assert snapshot.plan.steps[1].subtasks[1].depends_on == ["P.a"]
    assert "P.a" in driver.world.dispatcher.step_ids
    # and the subtasks get what their parent got
    a = driver.run(sid, "P.a", {"from": "a"})
    assert a.step_input.dependencies == {"R": {"from": "R"}}
    assert a.step_input.step.id == "P.a"
    driver.run(sid, "P.b", {"from": "b"})
    # When P runs again, it has their outputs
    again = driver.run(sid, "P", {"merged": True})
    assert again.step_input.subtask_outputs == {"P.a": {"from": "a"}, "P.b": {"from": "b"}}
    assert again.step_input.decompositions == 1
    assert again.attempt == 1  # runs are counted afresh after a sub-plan (retries, dead letters)
    driver.run(sid, "D", "done")
    final = driver.snapshot(sid)
    assert final.status == "completed" and final.completed_tasks == final.total_tasks == 5
    decomposed = [e for e in driver.logs(sid) if e["message"].startswith("Step decomposed")]
    assert decomposed[0]["taskId"] == "P" and decomposed[0]["data"]["subtasks"] == ["P.a", "P.b"]


def test_a_step_returning_the_same_sub_plan_again_fails_with_a_clear_error(driver):
    sid = driver.submit(step("P"))
    subplan = [step("a")]
    driver.run(sid, "P", StepResult(subtasks=subplan))
    driver.run(sid, "P.a", "a done")
    driver.run(sid, "P", StepResult(subtasks=subplan))
    snapshot = driver.snapshot(sid)
    assert snapshot.status == "failed" and snapshot.steps["P"].status == "failed"
    error = snapshot.errors[0]
    assert error.error_type == "ReplanLoopError" and "same sub-plan again" in error.message
    assert "return a final output" in error.message


def test_a_subtask_repeating_its_ancestors_sub_plan_is_stopped_before_the_depth_limit(driver):
    sid = driver.submit(step("P"))
    recursive = [step("x")]
    driver.run(sid, "P", StepResult(subtasks=recursive))
    driver.run(sid, "P.x", StepResult(subtasks=recursive))
    snapshot = driver.snapshot(sid)
    assert snapshot.steps["P.x"].status == "failed"
    assert "same sub-plan as its ancestor 'P'" in snapshot.errors[0].message


def test_sub_plans_nested_beyond_the_depth_limit_fail_the_step(fake_redis):
    driver = Driver(fake_redis, max_plan_depth=2)
    sid = driver.submit(step("P"))
    driver.run(sid, "P", StepResult(subtasks=[step("x")]))
    driver.run(sid, "P.x", StepResult(subtasks=[step("y")]))
    error = driver.snapshot(sid).errors[0]
    assert error.step_id == "P.x" and "3 levels deep" in error.message
    assert "MEOWSTIK_MAX_PLAN_DEPTH" in error.message


def test_a_step_may_return_only_so_many_different_sub_plans(fake_redis):
    driver = Driver(fake_redis, max_decompositions=1)
    sid = driver.submit(step("P"))
    driver.run(sid, "P", StepResult(subtasks=[step("a")]))
    driver.run(sid, "P.a", "a")
    driver.run(sid, "P", StepResult(subtasks=[step("b")]))
    assert "MEOWSTIK_MAX_DECOMPOSITIONS" in driver.snapshot(sid).errors[0].message


def test_a_second_different_sub_plan_gets_its_own_ids(driver):
    sid = driver.submit(step("P"))
    driver.run(sid, "P", StepResult(subtasks=[step("a")]))
    driver.run(sid, "P.a", "a")
    driver.run(sid, "P", StepResult(subtasks=[{**step("a"), "title": "again"}]))
    assert driver.statuses(sid)["P.2.a"] == "queued"
    assert driver.snapshot(sid).steps["P"].subtask_ids == ["P.a", "P.2.a"]


@pytest.mark.parametrize(
    ("subtasks", "fragment"),
    [
        ([step("a", "b"), step("b", "a")], "cycle"),
        ([step("a", "zz")], "not in the plan"),
        ([step("a", capability="time_travel")], "no registered agent"),
        ([{"id": "a"}], "subtask 0.title"),
        ([step("a"), step("a")], "unique"),
    ],
)
def test_an_invalid_sub_plan_fails_the_step_and_names_the_problem(driver, subtasks, fragment):
    sid = driver.submit(step("P"))
    driver.run(sid, "P", StepResult(subtasks=subtasks))
    snapshot = driver.snapshot(sid)
    assert snapshot.steps["P"].status == "failed" and snapshot.total_tasks == 1
    assert snapshot.errors[0].error_type == "SubPlanError"
    assert fragment in snapshot.errors[0].message


def test_a_failed_subtask_skips_its_parent_and_the_parents_dependents(driver):
    sid = driver.submit(step("P"), step("D", "P"), step("E"), policy="continue")
    driver.run(sid, "P", StepResult(subtasks=[step("a")]))
    driver.run(sid, "P.a", PermanentStepError("no"))
    driver.run(sid, "E", "independent")
    assert driver.statuses(sid) == {
        "P": "skipped",
        "D": "skipped",
        "E": "completed",
        "P.a": "failed",
    }
    assert driver.snapshot(sid).status == "failed"


def test_cancelling_while_a_step_waits_for_its_sub_plan_cancels_everything(driver):
    sid = driver.submit(step("P"))
    driver.run(sid, "P", StepResult(subtasks=[step("a"), step("b", "a")]))
    driver.engine.cancel(sid)
    assert set(driver.statuses(sid).values()) == {"cancelled"}


def test_a_stale_run_cannot_decompose(driver):
    sid = driver.submit(step("P"))
    run = driver.life.begin(sid, "P", AGENT)
    driver.engine.cancel(sid)
    transition = driver.life.succeed(run, StepResult(subtasks=[step("a")]))
    assert transition.code == "ended" and driver.snapshot(sid).total_tasks == 1


def test_a_plan_parent_sees_its_static_subtasks_outputs(driver):
    sid = driver.submit(step("P", subtasks=[step("s1"), step("s2")]))
    driver.run(sid, "s1", 1)
    driver.run(sid, "s2", 2)
    parent = driver.run(sid, "P", "done")
    assert parent.step_input.subtask_ids == ("s1", "s2")
    assert parent.step_input.subtask_outputs == {"s1": 1, "s2": 2}
    assert driver.snapshot(sid).steps["P"].subtask_ids == ["s1", "s2"]
