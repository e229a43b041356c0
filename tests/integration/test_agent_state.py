"""Agents coordinate through the State Manager (``step_input.state``) on real Redis and real
worker processes: locks and transactions make concurrent increments exact, temporary entries
expire, private state stays private, writes survive a step that fails afterwards, and a context
PATCH reaches a step that starts after it."""

import uuid

import pytest
import redis
import requests

from tests.support.cluster import wait_for
from tests.support.plans import step

pytestmark = pytest.mark.integration


def state_url(cluster, sid: str, tail: str = "") -> str:
    return f"{cluster.api_url}/api/orchestrator/sessions/{sid}/state{tail}"


def finished(cluster, body: dict) -> dict:
    done = cluster.wait_session(cluster.submit(body)["sessionId"])
    assert done["status"] == "completed", done["errors"]
    return done


def result(done: dict, step_id: str) -> dict:
    return done["results"][f"{done['sessionId']}.{step_id}"]


def test_two_parallel_steps_incrementing_under_a_lock_count_exactly_100(cluster):
    # Given two independent steps that each add 1 to a shared counter 50 times, under a lock
    plan = {"steps": [step(s, "state_work", mode="lock_counter", times=50) for s in "AB"]}
    done = finished(cluster, {"goal": "count with a lock", "plan": plan})
    # Then they ran in different processes at once, and no increment was lost
    a, b = result(done, "A"), result(done, "B")
    assert a["pid"] != b["pid"]
    entry = requests.get(state_url(cluster, done["sessionId"], "/counter"), timeout=5).json()
    assert entry["value"] == 100
    assert entry["version"] == 100 and entry["updatedBy"] == "agent:stateful-001"


def test_two_parallel_steps_incrementing_in_transactions_count_exactly_100(cluster):
    # Given the same with optimistic transactions, retried by the agent on conflict
    plan = {"steps": [step(s, "state_work", mode="tx_counter", times=50) for s in "AB"]}
    done = finished(cluster, {"goal": "count with transactions", "plan": plan})
    entry = requests.get(state_url(cluster, done["sessionId"], "/txCounter"), timeout=5).json()
    # Then every increment landed once, whatever the conflicts cost
    assert entry["value"] == 100 and entry["version"] == 100
    conflicts = result(done, "A")["conflicts"] + result(done, "B")["conflicts"]
    logs = cluster.logs(done["sessionId"])
    updates = [
        e for e in logs if e["message"] == "State updated" and e["data"]["key"] == "txCounter"
    ]
    assert len(updates) == 100 and conflicts >= 0


def test_a_temporary_entry_is_gone_for_a_step_that_starts_after_its_ttl(cluster):
    gate = uuid.uuid4().hex
    plan = {
        "steps": [
            step("W", "state_work", mode="write_temporary", key="flash", value="hi", ttlS=1),
            step("G", "gated_work", "W", gate=gate),
            step("R", "state_work", "G", mode="read", keys=["flash"]),
        ]
    }
    sid = cluster.submit({"goal": "temporary state", "plan": plan})["sessionId"]
    # While the entry lives the API lists it with its expiry
    seen = wait_for(
        lambda: requests.get(state_url(cluster, sid), timeout=5).json()["temporary"].get("flash"),
        30,
        what="the temporary entry written",
    )
    assert seen["value"] == "hi" and seen["expiresAt"]
    # When its TTL has passed (polled), the gate opens and R starts
    wait_for(
        lambda: "flash" not in requests.get(state_url(cluster, sid), timeout=5).json()["temporary"],
        30,
        what="the temporary entry expired",
    )
    redis.Redis.from_url(cluster.redis_url).rpush(f"test:gate:{gate}", "open")
    done = cluster.wait_session(sid)
    assert done["status"] == "completed", done["errors"]
    assert result(done, "R")["seen"] == {"flash": None}
    assert "flash" not in result(done, "R")["visible"]


def test_private_state_of_one_agent_is_invisible_to_another(cluster):
    plan = {
        "steps": [
            step("P", "state_work", mode="write_private", key="secret", value=42),
            step("A", "state_work", "P", mode="read", keys=["secret"]),
            step("B", "state_work_b", "P", mode="read", keys=["secret"]),
        ]
    }
    done = finished(cluster, {"goal": "private state", "plan": plan})
    # The writer agent sees its own entry in a later step; the other agent does not
    assert result(done, "A")["private"] == {"secret": 42}
    assert result(done, "A")["seen"] == {"secret": 42}
    assert result(done, "B")["private"] == {} and result(done, "B")["seen"] == {"secret": None}
    view = requests.get(state_url(cluster, done["sessionId"]), timeout=5).json()
    assert view["private"]["stateful-001"]["secret"]["value"] == 42
    assert "stateful-002" not in view["private"] and "secret" not in view["shared"]


def test_a_write_takes_effect_at_once_and_survives_the_step_failing(cluster):
    plan = {
        "steps": [
            step("F", "state_work", mode="write_then_fail", key="partial", value="kept"),
            step("R", "state_work", mode="read", keys=["partial"]),
        ]
    }
    sid = cluster.submit({"goal": "write then fail", "plan": plan, "failurePolicy": "continue"})
    done = cluster.wait_session(sid["sessionId"])
    assert done["status"] == "failed"
    assert done["steps"]["F"]["status"] == "failed"
    entry = requests.get(state_url(cluster, done["sessionId"], "/partial"), timeout=5).json()
    assert entry["value"] == "kept" and entry["updatedBy"] == "agent:stateful-001"


def test_a_context_patch_while_running_reaches_a_step_that_starts_after_it(cluster):
    gate = uuid.uuid4().hex
    plan = {
        "steps": [
            step("G", "gated_work", gate=gate),
            step("R", "state_work", "G", mode="read", keys=["flag"]),
        ]
    }
    sid = cluster.submit({"goal": "context propagation", "plan": plan})["sessionId"]
    wait_for(
        lambda: cluster.session(sid)["steps"]["G"]["status"] == "running", 30, what="G running"
    )
    patched = requests.patch(
        f"{cluster.api_url}/api/orchestrator/sessions/{sid}/context", json={"flag": "set"},
        timeout=5,
    )  # fmt: skip
    assert patched.status_code == 200
    redis.Redis.from_url(cluster.redis_url).rpush(f"test:gate:{gate}", "open")
    done = cluster.wait_session(sid)
    assert done["status"] == "completed", done["errors"]
    assert result(done, "R")["sharedState"]["flag"] == "set"  # the snapshot at claim
    assert result(done, "R")["seen"] == {"flag": "set"}  # and state.get
