"""End to end on real Redis, a real `celery worker` process and the API under gunicorn."""

import uuid
from datetime import datetime

import pytest
import redis

from tests.support.cluster import wait_for
from tests.support.plans import step
from tests.support.spec import SPEC_ORCHESTRATE_BODY

pytestmark = pytest.mark.integration


def at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def test_the_spec_request_completes_with_a_result_for_every_job(cluster):
    # Given the default fleet, when the spec's own request body is submitted
    submitted = cluster.submit(SPEC_ORCHESTRATE_BODY)
    # Then the session completes with one result per job id
    done = cluster.wait_session(submitted["sessionId"])
    assert done["status"] == "completed", done["errors"]
    assert set(done["results"]) == set(done["jobIds"]) and len(done["jobIds"]) == 5
    assert done["completedTasks"] == done["totalTasks"] == 5 and done["endTime"]
    # and with a model configured, the built-in agents did their steps through it
    assert all(result["mode"] == "llm" for result in done["results"].values())
    assert all(result["model"] == "test-model" for result in done["results"].values())
    steps = done["steps"]
    for state in steps.values():
        for dep in state["dependsOn"]:
            assert at(steps[dep]["finishedAt"]) <= at(state["startedAt"])


def test_a_step_starts_after_its_own_dependencies_and_never_waits_for_others(cluster):
    # Given A->C, A->D, B->D where B is held open by a gate
    gate = uuid.uuid4().hex
    plan = {
        "steps": [
            step("A", "echo_work"),
            step("B", "gated_work", gate=gate),
            step("C", "echo_work", "A"),
            step("D", "echo_work", "A", "B"),
        ]
    }
    sid = cluster.submit(
        {"goal": "dependency test", "plan": plan, "initialContext": {"run": gate}}
    )["sessionId"]
    client = redis.Redis.from_url(cluster.redis_url)
    try:
        # Then C completes while B has not finished (B may not even have been claimed yet)
        snapshot = wait_for(
            lambda: (s := cluster.session(sid))["steps"]["C"]["status"] == "completed" and s,
            30,
            what="C completed",
        )
        assert snapshot["steps"]["B"]["status"] in ("queued", "running")
        assert snapshot["steps"]["D"]["status"] == "pending"
        # and B really is running, holding D back, before the gate opens
        wait_for(lambda: cluster.session(sid)["steps"]["B"]["status"] == "running", 30, what="B")
        assert cluster.session(sid)["steps"]["D"]["status"] == "pending"
    finally:
        client.lpush(f"test:gate:{gate}", "open")
    # When B is released, D runs with the outputs of both A and B
    done = cluster.wait_session(sid)
    assert done["status"] == "completed", done["errors"]
    steps, results = done["steps"], done["results"]
    assert at(steps["C"]["finishedAt"]) < at(steps["B"]["finishedAt"])
    assert at(steps["D"]["startedAt"]) >= at(steps["B"]["finishedAt"])
    d_output = results[f"{sid}.D"]
    assert set(d_output["dependencies"]) == {"A", "B"}
    assert d_output["dependencies"]["A"]["stepId"] == "A"
    assert d_output["dependencies"]["B"]["gate"] == gate
    assert d_output["initialContext"] == {"run": gate}
    assert results[f"{sid}.C"]["dependencies"] == {"A": results[f"{sid}.A"]}
    assert d_output["sharedState"]["seen_A"] is True


def test_a_retryable_failure_is_retried_and_the_session_completes(cluster):
    plan = {"steps": [step("F", "flaky_work", succeedOn=2), step("E", "echo_work", "F")]}
    done = cluster.wait_session(cluster.submit({"goal": "flaky", "plan": plan})["sessionId"])
    assert done["status"] == "completed", done["errors"]
    assert done["steps"]["F"]["attempts"] == 2
    assert done["results"][f"{done['sessionId']}.F"]["attempt"] == 2


def test_a_permanent_failure_fails_the_session_fast_and_never_hangs(cluster):
    plan = {"steps": [step("X", "broken_work"), step("Y", "echo_work", "X")]}
    done = cluster.wait_session(cluster.submit({"goal": "broken", "plan": plan})["sessionId"])
    assert done["status"] == "failed"
    assert done["steps"]["X"]["status"] == "failed" and done["steps"]["Y"]["status"] == "cancelled"
    assert done["errors"][0]["stepId"] == "X" and "always fails" in done["errors"][0]["message"]
    assert done["steps"]["X"]["attempts"] == 1


def test_continue_policy_finishes_independent_branches(cluster):
    plan = {
        "steps": [step("X", "broken_work"), step("Y", "echo_work", "X"), step("Z", "echo_work")]
    }
    done = cluster.wait_session(
        cluster.submit({"goal": "continue", "plan": plan, "failurePolicy": "continue"})["sessionId"]
    )
    assert done["status"] == "failed"
    assert {k: v["status"] for k, v in done["steps"].items()} == {
        "X": "failed",
        "Y": "skipped",
        "Z": "completed",
    }


def test_subtasks_run_before_their_parent_which_receives_their_outputs(cluster):
    parent = step("P", "echo_work")
    parent["subtasks"] = [step("S1", "echo_work"), step("S2", "echo_work", "S1")]
    done = cluster.wait_session(
        cluster.submit({"goal": "tree", "plan": {"steps": [parent]}})["sessionId"]
    )
    assert done["status"] == "completed", done["errors"]
    assert set(done["results"][f"{done['sessionId']}.P"]["dependencies"]) == {"S1", "S2"}
    assert done["steps"]["S1"]["parentId"] == "P"


def test_agent_load_returns_to_zero_and_logs_record_every_step(cluster):
    import requests

    done = cluster.wait_session(cluster.submit({"goal": "Write a report about cats"})["sessionId"])
    assert done["status"] == "completed"
    agents = requests.get(f"{cluster.api_url}/api/orchestrator/agents", timeout=5).json()["agents"]
    assert all(a["currentLoad"] == 0 for a in agents)
    logs = requests.get(
        f"{cluster.api_url}/api/orchestrator/sessions/{done['sessionId']}/logs", timeout=5
    ).json()["logs"]
    messages = [(entry["message"], entry.get("taskId")) for entry in logs]
    for step_id in done["steps"]:
        assert ("Step started", step_id) in messages and ("Step completed", step_id) in messages


def test_workers_log_json_lines_with_session_and_step_ids(cluster):
    import json as json_module

    done = cluster.wait_session(
        cluster.submit({"goal": "json logs", "plan": {"steps": [step("J", "echo_work")]}})[
            "sessionId"
        ]
    )
    sid = done["sessionId"]

    def logged() -> list[dict]:
        lines = (cluster.log_dir / "worker.log").read_text(errors="replace").splitlines()
        entries = [json_module.loads(line) for line in lines if line.startswith("{")]
        return [e for e in entries if e.get("sessionId") == sid]

    entries = wait_for(logged, 10, what="the worker's JSON line for the step")
    assert entries[0]["stepId"] == "J" and entries[0]["agentId"] == "echo-001"
    assert entries[0]["message"] == "step completed" and entries[0]["level"] == "info"
