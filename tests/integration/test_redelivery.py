"""DESIGN rule 8: steps run at least once and complete exactly once in the record."""

import os
import signal
import uuid

import pytest
import redis
import requests

from orchestrator.core.dispatch import StepDispatch
from orchestrator.settings import Settings
from tests.support.cluster import wait_for
from tests.support.plans import step
from workers.celery_app import create_celery_app
from workers.dispatcher import CeleryDispatcher

pytestmark = pytest.mark.integration


def skipped(cluster, sid, step_id, *reason_prefixes):
    return [
        e
        for e in cluster.logs(sid)
        if e["message"] == "Delivery not run"
        and e.get("taskId") == step_id
        and e["data"]["reason"].startswith(reason_prefixes)
    ]


def test_a_duplicated_message_for_a_running_step_neither_runs_nor_counts_twice(cluster):
    # Given a step G held open by its gate, and a step E after it
    gate = uuid.uuid4().hex
    plan = {"steps": [step("G", "gated_work", gate=gate), step("E", "echo_work", "G")]}
    sid = cluster.submit({"goal": "duplicate delivery", "plan": plan})["sessionId"]
    wait_for(
        lambda: cluster.session(sid)["steps"]["G"]["status"] == "running", 30, what="G running"
    )

    # When the broker delivers G's message a second time (same task id, same queue)
    dispatcher = CeleryDispatcher(create_celery_app(Settings(redis_url=cluster.redis_url)))
    dispatcher.dispatch([StepDispatch(sid, "G", f"{sid}.G", "agent.gate-001", "gate-001")])

    # Then the duplicate sees the live lease and does not run
    wait_for(lambda: skipped(cluster, sid, "G", "leased"), 30, what="duplicate refused by lease")
    client = redis.Redis.from_url(cluster.redis_url)
    client.lpush(f"test:gate:{gate}", "open")
    done = cluster.wait_session(sid)
    # and when it comes back after the lease, it finds the step (here: the whole session)
    # finished and changes nothing
    wait_for(
        lambda: skipped(cluster, sid, "G", "finished", "ended"), 30, what="late duplicate ignored"
    )
    assert int(client.get(f"test:runs:{gate}")) == 1
    final = cluster.session(sid)
    assert final["status"] == "completed" and final["completedTasks"] == 2
    assert final["steps"]["G"]["attempts"] == 1
    assert len([e for e in cluster.logs(sid) if e["message"] == "Step completed"]) == 2
    assert done["results"] == final["results"]


def test_a_step_whose_worker_process_is_killed_runs_again_and_completes_once(cluster):
    # Given a gated step running in a prefork child
    gate = uuid.uuid4().hex
    plan = {"steps": [step("G", "gated_work", gate=gate), step("E", "echo_work", "G")]}
    sid = cluster.submit({"goal": "killed child", "plan": plan})["sessionId"]
    client = redis.Redis.from_url(cluster.redis_url)
    first_pid = int(wait_for(lambda: client.lindex(f"test:pids:{gate}", 0), 30, what="G started"))

    # When that child is killed with SIGKILL mid-step
    os.kill(first_pid, signal.SIGKILL)

    # Then the message comes back, waits out the dead run's lease, and a new run takes over
    second_pid = int(wait_for(lambda: client.lindex(f"test:pids:{gate}", 1), 60, what="G rerun"))
    assert second_pid != first_pid
    client.lpush(f"test:gate:{gate}", "open")
    done = cluster.wait_session(sid)
    assert done["status"] == "completed", done["errors"]
    assert done["steps"]["G"]["attempts"] == 2 and done["completedTasks"] == 2
    assert done["results"][f"{sid}.G"]["attempt"] == 2
    listed = requests.get(f"{cluster.api_url}/api/orchestrator/agents", timeout=5).json()
    assert {a["id"]: a["currentLoad"] for a in listed["agents"]}["gate-001"] == 0
