"""Plans round-trip (issue 18): the ``plan`` that POST /plans and a session snapshot hand out is
accepted back, unchanged, as the ``plan`` of POST /orchestrate and runs the same steps; its
goal, parallelizable, planner and template are ignored; unknown fields are still a 422.

Through Flask's test client on fakeredis with a recording dispatcher; steps are run by hand
through the same store (``tests.support.world``)."""

from __future__ import annotations

from typing import Any

import pytest

from api import create_app
from api.openapi import build_document
from orchestrator.core.step_runs import StepRun
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from tests.support.world import World, build_world

API = "/api/orchestrator"
AGENT = "researcher-001"  # hosts web_research, the capability of the hand-run steps


def step(step_id: str, *deps: str) -> dict[str, Any]:
    return {
        "id": step_id,
        "title": step_id,
        "requiredCapabilities": ["web_research"],
        "dependsOn": list(deps),
    }


@pytest.fixture
def env(fake_redis):
    settings = Settings()
    world = build_world(fake_redis, settings, prefix=settings.key_prefix)
    app = create_app(settings, redis_client=fake_redis, dispatcher=world.dispatcher)
    return app.test_client(), world


def submitted(response) -> dict[str, Any]:
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()


def walk(steps: list[dict[str, Any]]):
    for item in steps:
        yield item
        yield from walk(item.get("subtasks") or [])


def what_runs(session: dict[str, Any]) -> dict[str, tuple]:
    """Per step id: what it waits for, its parent and subtasks, what it needs and gets."""
    plan = {item["id"]: item for item in walk(session["plan"]["steps"])}
    return {
        step_id: (
            sorted(state["dependsOn"]),
            state.get("parentId"),
            state["subtaskIds"],
            plan[step_id]["requiredCapabilities"],
            plan[step_id].get("agentType"),
            plan[step_id].get("parameters"),
        )
        for step_id, state in session["steps"].items()
    }


def run(world: World, sid: str, step_id: str, result: StepResult) -> StepRun:
    claimed = world.lifecycle.begin(sid, step_id, AGENT)
    assert isinstance(claimed, StepRun), claimed
    world.lifecycle.succeed(claimed, result)
    return claimed


def log_messages(client, sid: str) -> list[str]:
    return [e["message"] for e in client.get(f"{API}/sessions/{sid}/logs").get_json()["logs"]]


PREVIEWED = {
    "a template with subtasks": {"goal": "Build a REST API for todos"},
    "the rule planner": {"goal": "Research and implement user authentication", "planner": "rule"},
    "a client's plan": {"goal": "g", "plan": {"steps": [step("a"), step("b"), step("c", "a")]}},
}


@pytest.mark.parametrize("body", PREVIEWED.values(), ids=PREVIEWED.keys())
def test_a_previewed_plan_posted_back_runs_the_same_steps(env, body):
    client, _world = env
    # Given a plan preview
    preview = client.post(f"{API}/plans", json=body)
    assert preview.status_code == 200, preview.get_data(as_text=True)
    plan = preview.get_json()["plan"]
    # When its plan is posted, unchanged, to /orchestrate
    session = submitted(
        client.post(f"{API}/orchestrate", json={"goal": body["goal"], "plan": plan})
    )
    # Then the session runs the steps the planner would have run: same ids, dependencies,
    # parents, capabilities and parameters
    planned = submitted(client.post(f"{API}/orchestrate", json=body))
    assert what_runs(session) == what_runs(planned)
    assert session["plan"]["steps"] == plan["steps"]
    previewed = preview.get_json()["steps"]
    assert {s: (sorted(p["dependsOn"]), p.get("parentId")) for s, p in previewed.items()} == {
        s: (sorted(state["dependsOn"]), state.get("parentId"))
        for s, state in session["steps"].items()
    }
    # and the plan is recorded as the client's, with the goal and parallelism it had
    assert session["plan"]["planner"] == "explicit" and "template" not in session["plan"]
    assert session["plan"]["goal"] == plan["goal"]
    assert session["plan"]["parallelizable"] == plan["parallelizable"]


def test_the_log_quotes_who_made_the_plan_sent_back_without_recording_it(env):
    client, _world = env
    plan = client.post(f"{API}/plans", json={"goal": "Build a REST API for todos"}).get_json()
    assert (plan["plan"]["planner"], plan["plan"]["template"]) == ("template", "rest_api")
    sid = submitted(
        client.post(f"{API}/orchestrate", json={"goal": "Build a REST API", "plan": plan["plan"]})
    )["sessionId"]
    quoted = "Plan given by the client; it says it was made by planner 'template', template"
    assert f"{quoted} 'rest_api'" in log_messages(client, sid)
    snapshot = client.get(f"{API}/sessions/{sid}").get_json()
    assert snapshot["plan"]["planner"] == "explicit" and "template" not in snapshot["plan"]


def test_the_plans_goal_and_parallelizable_are_ignored_in_favour_of_the_request_and_graph(env):
    client, _world = env
    # Given a plan whose goal and parallelizable say something else than the request and steps
    plan = {"goal": "another goal", "parallelizable": False, "planner": "rule"}
    plan["steps"] = [step("a"), step("b")]
    # When it is submitted
    session = submitted(client.post(f"{API}/orchestrate", json={"goal": "mine", "plan": plan}))
    # Then the goal is the request's and parallelizable is computed (a and b run side by side)
    assert session["goal"] == session["plan"]["goal"] == "mine"
    assert session["plan"]["parallelizable"] is True
    assert session["plan"]["planner"] == "explicit"


def decomposed_session(client, world: World) -> dict[str, Any]:
    """A completed session R -> P -> D in which P returned the sub-plan a, b (b after a)."""
    body = {"goal": "decompose", "plan": {"steps": [step("R"), step("P", "R"), step("D", "P")]}}
    sid = submitted(client.post(f"{API}/orchestrate", json=body))["sessionId"]
    run(world, sid, "R", StepResult({"from": "R"}))
    run(world, sid, "P", StepResult(subtasks=[step("a"), step("b", "a")]))
    for step_id in ("P.a", "P.b", "P", "D"):
        run(world, sid, step_id, StepResult({"from": step_id}))
    return client.get(f"{API}/sessions/{sid}").get_json()


def test_a_completed_sessions_plan_with_a_grafted_sub_plan_runs_again_as_a_static_tree(env):
    client, world = env
    # Given a completed session whose snapshot's plan has P's sub-plan grafted under P
    first = decomposed_session(client, world)
    assert first["status"] == "completed"
    assert [s["id"] for s in first["plan"]["steps"][1]["subtasks"]] == ["P.a", "P.b"]
    # When its plan is posted back
    again = {"goal": first["goal"], "plan": first["plan"]}
    second = submitted(client.post(f"{API}/orchestrate", json=again))
    # Then the same tree runs: P.a and P.b are P's subtasks, after R, with P after them
    assert what_runs(second) == what_runs(first)
    assert second["steps"]["P"]["subtaskIds"] == ["P.a", "P.b"]
    assert sorted(second["steps"]["P"]["dependsOn"]) == ["P.a", "P.b", "R"]
    sid = second["sessionId"]
    run(world, sid, "R", StepResult({"from": "R"}))
    run(world, sid, "P.a", StepResult({"from": "P.a"}))
    run(world, sid, "P.b", StepResult({"from": "P.b"}))
    parent = run(world, sid, "P", StepResult({"merged": True}))
    assert set(parent.step_input.subtask_outputs) == {"P.a", "P.b"}
    run(world, sid, "D", StepResult({"from": "D"}))
    done = client.get(f"{API}/sessions/{sid}").get_json()
    assert done["status"] == "completed" and done["completedTasks"] == done["totalTasks"] == 5
    assert done["steps"]["P"]["decompositions"] == 0


def test_a_resubmitted_step_that_decomposes_into_the_same_ids_again_fails_saying_so(env):
    client, world = env
    first = decomposed_session(client, world)
    sid = submitted(
        client.post(f"{API}/orchestrate", json={"goal": "again", "plan": first["plan"]})
    )["sessionId"]
    for step_id in ("R", "P.a", "P.b"):
        run(world, sid, step_id, StepResult({"from": step_id}))
    # When P returns its old sub-plan although its subtasks already ran
    run(world, sid, "P", StepResult(subtasks=[step("a"), step("b", "a")]))
    # Then P fails with a message naming the id in use
    snapshot = client.get(f"{API}/sessions/{sid}").get_json()
    assert snapshot["steps"]["P"]["status"] == "failed"
    assert "'P.a' is already used in this session" in snapshot["errors"][0]["message"]


def rest_api_plan(client) -> dict[str, Any]:
    return client.post(f"{API}/plans", json={"goal": "Build a REST API"}).get_json()["plan"]


def with_extra(plan: dict[str, Any], where: str) -> tuple[dict[str, Any], str]:
    """The plan with an unknown field added at ``where``, and the location a 422 names."""
    if where == "plan":
        return {**plan, "bogus": 1}, "body.plan.bogus"
    if where == "step":
        plan["steps"][0]["bogus"] = 1
        return plan, "body.plan.steps.0.bogus"
    parent = next(i for i, item in enumerate(plan["steps"]) if item.get("subtasks"))
    plan["steps"][parent]["subtasks"][1]["bogus"] = 1
    return plan, f"body.plan.steps.{parent}.subtasks.1.bogus"


@pytest.mark.parametrize("where", ["plan", "step", "subtask"])
def test_an_unknown_field_in_a_returned_plan_is_still_a_422_naming_it(env, where):
    client, _world = env
    plan, location = with_extra(rest_api_plan(client), where)
    response = client.post(f"{API}/orchestrate", json={"goal": "Build a REST API", "plan": plan})
    assert response.status_code == 422, response.get_data(as_text=True)
    errors = response.get_json()["error"]["details"]["errors"]
    assert [(e["location"], e["type"]) for e in errors] == [(location, "extra_forbidden")]


@pytest.mark.parametrize(
    ("extra", "location", "kind"),
    [
        ({"bogus": 1}, "body.bogus", "extra_forbidden"),
        ({"plan": {"planer": "rule"}}, "body.plan.planer", "extra_forbidden"),
        ({"plan": {"planner": "nobody"}}, "body.plan.planner", "enum"),
        ({"plan": {"template": "Bad Name"}}, "body.plan.template", "string_pattern_mismatch"),
    ],
)
def test_the_body_and_the_ignored_fields_are_still_checked(env, extra, location, kind):
    client, world = env
    body = {"goal": "g", **extra}
    if "plan" in body:
        body["plan"]["steps"] = [step("a")]
    response = client.post(f"{API}/orchestrate", json=body)
    assert response.status_code == 422, response.get_data(as_text=True)
    errors = response.get_json()["error"]["details"]["errors"]
    assert [(e["location"], e["type"]) for e in errors] == [(location, kind)]
    assert world.dispatcher.sent == []


def test_the_openapi_document_says_a_returned_plan_is_accepted_and_what_is_ignored():
    schemas = build_document()["components"]["schemas"]
    accepted, returned = schemas["ExplicitPlan"], schemas["TaskPlan"]
    # every field of the plan handed out is a field of the plan taken in
    assert set(returned["properties"]) <= set(accepted["properties"])
    assert accepted["additionalProperties"] is False
    for name in ("goal", "parallelizable", "planner", "template"):
        assert accepted["properties"][name]["description"].startswith("Ignored")
    assert "accepted back unchanged" in " ".join(returned["description"].split())
