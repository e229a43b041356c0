"""Issue 4's session controls on real Redis and real workers: cancellation."""

import uuid

import psutil
import pytest
import redis
import requests

from tests.support.cluster import wait_for
from tests.support.plans import step

pytestmark = pytest.mark.integration


def test_cancel_mid_run_stops_the_running_step_and_nothing_starts_afterwards(cluster):
    client = redis.Redis.from_url(cluster.redis_url)
    gate = uuid.uuid4().hex
    # Given S1 running on solo-001 (maxLoad 1), S2 waiting for its slot, and E after S1
    plan = {
        "steps": [
            step("S1", "solo_work", gate=gate),
            step("S2", "solo_work"),
            step("E", "echo_work", "S1"),
        ]
    }
    sid = cluster.submit({"goal": "cancel me", "plan": plan})["sessionId"]
    pid = int(wait_for(lambda: client.lindex(f"test:pids:{gate}", 0), 30, what="S1 started"))
    assert cluster.session(sid)["steps"]["S2"]["waitingFor"] == "capacity"
    # When the session is cancelled
    response = requests.post(
        f"{cluster.api_url}/api/orchestrator/sessions/{sid}/cancel", timeout=10
    )
    assert response.status_code == 200
    snapshot = response.json()
    # Then it is cancelled at once, with every unfinished step
    assert snapshot["status"] == "cancelled"
    assert {k: v["status"] for k, v in snapshot["steps"].items()} == {
        "S1": "cancelled",
        "S2": "cancelled",
        "E": "cancelled",
    }
    # and the process running S1 is terminated
    wait_for(
        lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie",
        15,
        what="S1's process terminated",
    )
    # and once S1's slot is free again, nothing of the session starts
    wait_for(lambda: cluster.agents()["solo-001"]["currentLoad"] == 0, 15, what="slot freed")
    other = cluster.wait_session(
        cluster.submit({"goal": "after", "plan": {"steps": [step("X", "solo_work")]}})["sessionId"]
    )
    assert other["status"] == "completed"
    started = [e["taskId"] for e in cluster.logs(sid) if e["message"] == "Step started"]
    assert started == ["S1"]
    assert cluster.session(sid)["status"] == "cancelled"
    # and cancelling again changes nothing
    again = requests.post(f"{cluster.api_url}/api/orchestrator/sessions/{sid}/cancel", timeout=10)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    client.lpush(f"test:gate:{gate}", "open")  # nothing waits on it any more


def test_cancelling_a_finished_or_unknown_session_is_a_clear_error(cluster):
    done = cluster.wait_session(
        cluster.submit({"goal": "quick", "plan": {"steps": [step("Q", "echo_work")]}})["sessionId"]
    )
    finished = requests.post(
        f"{cluster.api_url}/api/orchestrator/sessions/{done['sessionId']}/cancel", timeout=10
    )
    assert finished.status_code == 409 and finished.json()["error"]["code"] == "session_finished"
    unknown = requests.post(f"{cluster.api_url}/api/orchestrator/sessions/nope/cancel", timeout=10)
    assert unknown.status_code == 404


SCHEMA = {"type": "object", "properties": {"approve": {"type": "boolean"}}, "required": ["approve"]}


def answer(cluster, sid, step_id, value):
    return requests.post(
        f"{cluster.api_url}/api/orchestrator/sessions/{sid}/input",
        json={"stepId": step_id, "value": value},
        timeout=10,
    )


def test_operator_input_holds_no_worker_slot_and_an_answer_resumes_the_step(cluster):
    # Given a step on asker-001 (maxLoad 1) that asks for approval
    plan = {
        "steps": [
            step("A", "ask_work", question="Deploy to production?", schema=SCHEMA),
            step("N", "echo_work", "A"),
        ]
    }
    sid = cluster.submit({"goal": "ask", "plan": plan})["sessionId"]
    waiting = wait_for(
        lambda: (s := cluster.session(sid))["status"] == "waiting_for_input" and s,
        30,
        what="waiting_for_input",
    )
    # Then the step and session wait, showing the question, holding no slot
    assert waiting["steps"]["A"]["status"] == "waiting_for_input"
    assert waiting["steps"]["A"]["inputRequest"]["question"] == "Deploy to production?"
    assert cluster.agents()["asker-001"]["currentLoad"] == 0
    # and the same agent runs another session's step meanwhile
    other = cluster.wait_session(
        cluster.submit(
            {"goal": "meanwhile", "plan": {"steps": [step("B", "ask_work", noAsk=True)]}}
        )["sessionId"]
    )
    assert other["status"] == "completed" and other["steps"]["B"]["agentId"] == "asker-001"
    # When an invalid answer comes, it is refused and nothing changes
    refused = answer(cluster, sid, "A", {"approve": "yes"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_input"
    assert cluster.session(sid)["steps"]["A"]["status"] == "waiting_for_input"
    # When a valid answer comes, the step runs again with it and the session completes
    accepted = answer(cluster, sid, "A", {"approve": True})
    assert accepted.status_code == 200
    done = cluster.wait_session(sid)
    assert done["status"] == "completed", done["errors"]
    assert done["results"][f"{sid}.A"]["answer"] == {"approve": True}
    assert answer(cluster, sid, "A", {"approve": True}).status_code == 409


def test_a_missed_input_deadline_applies_the_default_answer(cluster):
    plan = {"steps": [step("D", "ask_work", schema=SCHEMA, timeoutS=1, default={"approve": False})]}
    sid = cluster.submit({"goal": "deadline", "plan": plan})["sessionId"]
    done = cluster.wait_session(sid, timeout_s=30)
    assert done["status"] == "completed", done["errors"]
    assert done["results"][f"{sid}.D"]["answer"] == {"approve": False}
    assert any(
        e["message"] == "Step input received" and e["data"]["by"] == "default"
        for e in cluster.logs(sid)
    )
