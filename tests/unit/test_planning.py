"""Choosing a planner per request, templates through the engine, depth limits and plan
previews with their critical path."""

import pytest

from orchestrator.core.errors import LimitExceededError, PlanDepthError, PlannerChoiceError
from orchestrator.core.models import OrchestrateRequest
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from tests.support.world import build_world


def request(**body) -> OrchestrateRequest:
    return OrchestrateRequest.model_validate({"goal": "Build a REST API for todos", **body})


def timed(step_id: str, seconds: float | None, *deps: str, capability="web_research") -> dict:
    step = {"id": step_id, "title": step_id, "requiredCapabilities": [capability]}
    step["dependsOn"] = list(deps)
    if seconds is not None:
        step["estimatedDurationS"] = seconds
    return step


@pytest.fixture
def world(fake_redis):
    return build_world(fake_redis, Settings())


def test_a_named_template_plans_the_session_and_the_snapshot_shows_the_tree(world):
    snapshot = world.engine.submit(request(template="rest_api"))
    assert snapshot.plan.planner == "template" and snapshot.plan.template == "rest_api"
    implement = snapshot.steps["implement"]
    assert implement.subtask_ids == ["user-endpoints", "auth-endpoints", "error-handling"]
    assert snapshot.steps["auth-endpoints"].parent_id == "implement"
    assert snapshot.total_tasks == 8
    # subtasks wait for what their parent waits for, the parent for them too
    assert set(world.dispatcher.step_ids) == {"design", "research"}
    assert set(implement.depends_on) == {"design", "research", *implement.subtask_ids}
    assert set(snapshot.steps["user-endpoints"].depends_on) == {"design", "research"}
    logs = world.sessions._logbook.session_entries(snapshot.session_id)
    created = [e for e in logs if e["message"].startswith("Session created")]
    assert created[0]["data"]["subtasks"] == {"implement": implement.subtask_ids}
    assert created[0]["data"]["template"] == "rest_api"


def test_auto_picks_a_matching_template_and_otherwise_the_rule_planner(world):
    by_template = world.engine.submit(request())
    assert (by_template.plan.planner, by_template.plan.template) == ("template", "rest_api")
    by_rules = world.engine.submit(request(goal="Research and implement user authentication"))
    assert by_rules.plan.planner == "rule" and by_rules.plan.template is None


def test_the_configured_default_planner_applies_when_the_request_names_none(fake_redis):
    world = build_world(fake_redis, Settings(planner="rule"))
    assert world.engine.submit(request()).plan.planner == "rule"
    assert world.engine.submit(request(planner="template")).plan.template == "rest_api"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"plan": {"steps": [timed("a", 1)]}, "planner": "rule"}, "own plan"),
        ({"plan": {"steps": [timed("a", 1)]}, "template": "rest_api"}, "own plan"),
        ({"template": "rest_api", "planner": "rule"}, "cannot be used with planner"),
        ({"planner": "llm"}, "MEOWSTIK_LLM_BASE_URL"),
        ({"planner": "explicit"}, "needs a plan"),
    ],
)
def test_contradictory_planner_choices_are_rejected_with_a_fix(world, body, fragment):
    with pytest.raises(PlannerChoiceError) as error:
        world.engine.submit(request(**body))
    assert fragment in error.value.message and error.value.http_status == 422


def test_subtasks_nested_deeper_than_the_limit_are_rejected(fake_redis):
    world = build_world(fake_redis, Settings(max_plan_depth=2))
    inner = timed("c", 1)
    middle = {**timed("b", 1), "subtasks": [inner]}
    outer = {**timed("a", 1), "subtasks": [middle]}
    with pytest.raises(PlanDepthError) as error:
        world.engine.submit(request(plan={"steps": [outer]}))
    assert error.value.details == {"stepId": "c", "depth": 3, "limit": 2}


def test_a_plan_over_the_step_limit_is_rejected_before_anything_is_stored(fake_redis):
    world = build_world(fake_redis, Settings(max_plan_steps=3))
    with pytest.raises(LimitExceededError):
        world.engine.submit(request(template="rest_api"))
    assert world.engine.list_sessions(user_id=None, status=None, limit=10, cursor=None)[0] == []


def test_the_preview_finds_the_critical_path_of_a_known_graph(world):
    # a(10) -> b(5) -> d(1);  a -> c(20) -> d;  e(3) on its own
    steps = [timed("a", 10), timed("b", 5, "a"), timed("c", 20, "a"), timed("d", 1, "b", "c")]
    preview = world.engine.preview(request(plan={"steps": [*steps, timed("e", 3)]}))
    assert preview.critical_path == ["a", "c", "d"]
    assert preview.estimated_duration_s == 31
    assert preview.steps["b"].slack_s == 15 and preview.steps["c"].slack_s == 0
    assert preview.steps["e"].slack_s == 28
    assert preview.steps["d"].earliest_start_s == 30
    assert preview.steps_without_estimate == []
    assert world.dispatcher.sent == []  # nothing ran


def test_the_preview_of_a_template_includes_its_subtasks_on_the_critical_path(world):
    preview = world.engine.preview(request(template="rest_api"))
    assert preview.critical_path == [
        "research",
        "user-endpoints",
        "error-handling",
        "implement",
        "tests",
        "review",
    ]
    assert preview.estimated_duration_s == 30 + 40 + 20 + 15 + 30 + 20
    assert preview.plan.template == "rest_api" and preview.total_steps == 8


def test_the_preview_uses_measured_durations_for_steps_without_an_estimate(world):
    # Given one web_research step that really took 2 seconds
    sid = world.engine.submit(request(plan={"steps": [timed("m", None)]})).session_id
    run = world.lifecycle.begin(sid, "m", "researcher-001")
    world.clock.advance(2)
    world.lifecycle.succeed(run, StepResult("done"))
    # When a plan of web_research steps without estimates is previewed
    steps = [timed("x", None), timed("y", None, "x"), timed("z", 1, capability="code_generation")]
    preview = world.engine.preview(request(plan={"steps": steps}))
    # Then they are estimated from the measurement, and the rest say where theirs came from
    assert preview.steps["x"].estimate_s == 2 and preview.steps["x"].estimate_source == "measured"
    assert preview.steps["z"].estimate_source == "plan"
    assert preview.critical_path == ["x", "y"] and preview.estimated_duration_s == 4


def test_a_preview_without_any_estimate_still_shows_the_longest_chain(world):
    steps = [
        timed("a", None, capability="code_review"),
        timed("b", None, "a", capability="code_review"),
        timed("c", None, capability="code_review"),
    ]
    preview = world.engine.preview(request(plan={"steps": steps}))
    assert preview.critical_path == ["a", "b"] and preview.estimated_duration_s == 0
    assert preview.steps_without_estimate == ["a", "c", "b"]
