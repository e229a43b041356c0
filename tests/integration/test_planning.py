"""Planning end to end on the real cluster: the REST API template with its subtasks, the LLM
planner over real HTTP (valid, repaired, cyclic, unroutable), dynamic decomposition and its
loop guard, plan previews and the template list."""

import pytest
import requests

from tests.support.plans import step

pytestmark = pytest.mark.integration

REST_SUBTASKS = {"user-endpoints", "auth-endpoints", "error-handling"}


def planner_calls(fake_llm, marker: str) -> list[dict]:
    return [
        body
        for _path, body in fake_llm.requests
        if body["messages"][0]["content"].startswith("You are the planner")
        and marker in body["messages"][1]["content"]
    ]


def test_the_rest_api_template_runs_end_to_end_and_the_parent_sees_its_subtasks(cluster):
    # Given the built-in fleet, when the REST API template is asked for by name
    submitted = cluster.submit({"goal": "Build a REST API for orders", "template": "rest_api"})
    assert submitted["plan"]["template"] == "rest_api"
    done = cluster.wait_session(submitted["sessionId"])
    # Then all eight steps complete, the three subtasks before their parent
    assert done["status"] == "completed", done["errors"]
    assert done["completedTasks"] == done["totalTasks"] == 8
    steps = done["steps"]
    assert set(steps["implement"]["subtaskIds"]) == REST_SUBTASKS
    for subtask in REST_SUBTASKS:
        assert steps[subtask]["parentId"] == "implement"
        assert steps[subtask]["finishedAt"] <= steps["implement"]["startedAt"]
    # and the parent's agent received the three subtask outputs
    implement = done["results"][f"{done['sessionId']}.implement"]
    assert set(implement["subtasksUsed"]) == REST_SUBTASKS
    assert REST_SUBTASKS <= set(implement["inputsUsed"])
    endpoints = done["results"][f"{done['sessionId']}.user-endpoints"]
    assert endpoints["mode"] == "llm"  # a model is configured on this cluster
    assert endpoints["summary"] == "user-endpoints answered by test-model"
    released = [e for e in cluster.logs(done["sessionId"]) if e["message"].startswith("Subtasks")]
    assert released[0]["taskId"] == "implement"
    assert set(released[0]["data"]["subtasks"]) == REST_SUBTASKS


def test_a_valid_llm_plan_runs(cluster, fake_llm):
    submitted = cluster.submit({"goal": "Summarise owls [plan:valid]", "planner": "llm"})
    assert submitted["plan"]["planner"] == "llm"
    done = cluster.wait_session(submitted["sessionId"])
    assert done["status"] == "completed", done["errors"]
    assert list(done["steps"]) == ["gather", "summarise"]
    assert len(planner_calls(fake_llm, "[plan:valid]")) == 1


def test_a_malformed_llm_plan_is_sent_back_and_the_repaired_plan_runs(cluster, fake_llm):
    marker = "[plan:malformed-once]"
    submitted = cluster.submit({"goal": f"Summarise cats {marker}", "planner": "llm"})
    done = cluster.wait_session(submitted["sessionId"])
    assert done["status"] == "completed" and done["plan"]["planner"] == "llm"
    calls = planner_calls(fake_llm, marker)
    assert len(calls) == 2
    repair = calls[1]["messages"]
    assert repair[2]["content"].startswith("Sure!") and "rejected" in repair[3]["content"]
    logs = cluster.logs(done["sessionId"])
    assert [e["data"]["attempt"] for e in logs if e["message"] == "LLM plan rejected"] == [1]


def test_an_unroutable_llm_plan_is_repaired_with_the_capability_named(cluster, fake_llm):
    marker = "[plan:unroutable-once]"
    done = cluster.wait_session(
        cluster.submit({"goal": f"Summarise dogs {marker}", "planner": "llm"})["sessionId"]
    )
    assert done["status"] == "completed" and done["plan"]["planner"] == "llm"
    assert "teleport" in planner_calls(fake_llm, marker)[1]["messages"][3]["content"]


def test_a_plan_that_stays_cyclic_falls_back_to_the_rule_planner_with_a_warning(cluster, fake_llm):
    marker = "[plan:cyclic]"
    submitted = cluster.submit({"goal": f"Write a report about bats {marker}", "planner": "llm"})
    assert submitted["plan"]["planner"] == "rule"
    done = cluster.wait_session(submitted["sessionId"])
    assert done["status"] == "completed", done["errors"]
    assert len(planner_calls(fake_llm, marker)) == 3  # MEOWSTIK_PLANNER_MAX_ATTEMPTS
    response = requests.get(
        f"{cluster.api_url}/api/orchestrator/sessions/{done['sessionId']}/logs",
        params={"level": "warn"},
        timeout=10,
    )
    warnings = [e for e in response.json()["logs"] if e["message"].startswith("LLM planner failed")]
    assert warnings and warnings[0]["level"] == "warn" and "cycle" in warnings[0]["data"]["reason"]


def test_a_step_that_returns_a_sub_plan_gets_it_scheduled_and_then_its_outputs(cluster):
    subplan = [step("left", "echo_work"), step("right", "echo_work", "left")]
    plan = {
        "steps": [step("D", "decompose_work", subplan=subplan), step("after", "echo_work", "D")]
    }
    done = cluster.wait_session(cluster.submit({"goal": "decompose", "plan": plan})["sessionId"])
    assert done["status"] == "completed", done["errors"]
    sid, steps = done["sessionId"], done["steps"]
    assert done["totalTasks"] == 4 and steps["D"]["subtaskIds"] == ["D.left", "D.right"]
    assert steps["D.right"]["dependsOn"] == ["D.left"] and steps["D"]["decompositions"] == 1
    parent = done["results"][f"{sid}.D"]
    assert set(parent["subtaskOutputs"]) == {"D.left", "D.right"}
    assert parent["subtaskOutputs"]["D.left"]["stepId"] == "D.left"
    assert done["results"][f"{sid}.after"]["dependencies"]["D"]["decompositions"] == 1
    # the snapshot's plan shows the sub-plan under its step
    grafted = done["plan"]["steps"][0]["subtasks"]
    assert [s["id"] for s in grafted] == ["D.left", "D.right"]
    messages = [e["message"] for e in cluster.logs(sid)]
    assert "Step decomposed into 2 subtasks" in messages


def test_a_sub_plan_that_repeats_itself_is_stopped_with_a_clear_error(cluster):
    subplan = [step("again", "echo_work")]
    plan = {"steps": [step("L", "decompose_work", subplan=subplan, repeat=True)]}
    done = cluster.wait_session(cluster.submit({"goal": "loop", "plan": plan})["sessionId"])
    assert done["status"] == "failed"
    assert done["steps"]["L.again"]["status"] == "completed"  # the first sub-plan ran
    error = done["errors"][0]
    assert error["stepId"] == "L" and error["errorType"] == "ReplanLoopError"
    assert "same sub-plan again" in error["message"]


def test_the_plan_preview_runs_nothing_and_returns_the_critical_path(cluster):
    before = requests.get(f"{cluster.api_url}/api/orchestrator/sessions", timeout=10).json()
    response = requests.post(
        f"{cluster.api_url}/api/orchestrator/plans",
        json={"goal": "Build a REST API for invoices", "planner": "auto"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["plan"]["template"] == "rest_api" and preview["totalSteps"] == 8
    assert preview["criticalPath"][-1] == "review" and preview["estimatedDurationS"] == 155
    after = requests.get(f"{cluster.api_url}/api/orchestrator/sessions", timeout=10).json()
    assert after["count"] == before["count"]


def test_a_previewed_plan_posted_back_unchanged_runs_to_completion(cluster):
    # Given the preview of a template plan
    goal = "Build a REST API for payments"
    body = {"goal": goal, "planner": "auto"}
    response = requests.post(f"{cluster.api_url}/api/orchestrator/plans", json=body, timeout=10)
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["plan"]["template"] == "rest_api"
    # When its plan is submitted as it is
    submitted = cluster.submit({"goal": goal, "plan": preview["plan"]})
    done = cluster.wait_session(submitted["sessionId"])
    # Then the previewed steps all ran, subtasks before their parent, as the client's plan
    assert done["status"] == "completed", done["errors"]
    assert set(done["steps"]) == set(preview["steps"]) and done["completedTasks"] == 8
    assert done["plan"]["steps"] == preview["plan"]["steps"]
    assert done["plan"]["planner"] == "explicit"
    for subtask in REST_SUBTASKS:
        assert done["steps"][subtask]["parentId"] == "implement"
        assert done["steps"][subtask]["finishedAt"] <= done["steps"]["implement"]["startedAt"]


def test_templates_are_listed_and_a_bad_template_request_is_a_clear_422(cluster):
    listing = requests.get(f"{cluster.api_url}/api/orchestrator/templates", timeout=10).json()
    names = {t["name"] for t in listing["templates"]}
    assert {"rest_api", "blog_post", "research_report", "code_review"} <= names
    response = requests.post(
        f"{cluster.api_url}/api/orchestrator/orchestrate",
        json={"goal": "x", "template": "no_such"},
        timeout=10,
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unknown_template"
