"""Step timeouts on real workers (issue 22). A Python agent that hangs past its timeout is stopped
by Celery's soft limit inside the agent, or, when it swallows that, by the hard limit killing
its pool process (recorded at once by the worker's main process); in a threads pool, where no
limit reaches the agent, the run is abandoned at its timeout. Each time the step fails with a
timeout error, its slot comes free and the retry succeeds."""

from __future__ import annotations

import os
import uuid

import pytest
import redis

from tests.support.cluster import Cluster, wait_for
from tests.support.plans import step

pytestmark = pytest.mark.integration

AGENTS = {"sleeper-001", "stubborn-001", "sleeper-002"}
SESSION_DEADLINE_S = 40  # well inside the lease: a run left unrecorded would still be "running"


@pytest.fixture(scope="module")
def timeout_cluster(redis_server, tmp_path_factory):
    env = {
        "MEOWSTIK_STEP_TIMEOUT_GRACE_S": "2",
        # a lease longer than any wait here: only the timeout record, never the reconciler
        # rerouting a run whose lease lapsed, can move these steps on
        "MEOWSTIK_LEASE_S": "60",
    }
    cluster = Cluster(redis_server.url, tmp_path_factory.mktemp("timeout-cluster-logs"), env)
    try:
        redis.Redis.from_url(redis_server.url).flushall()
        cluster.start_worker("prefork", concurrency=2, agents="sleeper-001,stubborn-001")
        cluster.start_worker("threads", concurrency=2, agents="sleeper-002", pool="threads")
        cluster.start_api()
        cluster.wait_ready(AGENTS)
        yield cluster
    finally:
        cluster.stop()


def run_to_the_end(cluster: Cluster, plan_step: dict) -> tuple[str, dict, list[dict]]:
    session_id = cluster.submit({"goal": "time out once", "plan": {"steps": [plan_step]}})[
        "sessionId"
    ]
    done = cluster.wait_session(session_id, timeout_s=SESSION_DEADLINE_S)
    return session_id, done, cluster.logs(session_id)


def the_timeout(logs: list[dict]) -> dict:
    """The one "Step timed out" entry, checked against the retry that followed it."""
    (timed_out,) = [entry for entry in logs if entry["message"] == "Step timed out"]
    retrying = [entry for entry in logs if entry["message"] == "Step retrying"]
    assert len(retrying) == 1 and retrying[0]["error"].startswith("StepTimeoutError: step timed")
    assert not [entry for entry in logs if "recovered" in entry["message"]]
    return timed_out


def result(done: dict, step_id: str) -> dict:
    return done["results"][f"{done['sessionId']}.{step_id}"]


def soft_limits_seen(cluster: Cluster, gate: str) -> int:
    return int(redis.Redis.from_url(cluster.redis_url).get(f"test:soft:{gate}") or 0)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_an_agent_past_its_step_timeout_gets_the_soft_limit_and_its_retry_succeeds(
    timeout_cluster,
):
    # Given a step with timeoutS 1 whose agent hangs on its first attempt (prefork pool)
    gate = uuid.uuid4().hex
    # When it runs
    _, done, logs = run_to_the_end(
        timeout_cluster, {**step("S", "sleepy_work", gate=gate), "timeoutS": 1}
    )
    # Then the soft limit interrupted the agent, the step failed with a timeout error ...
    assert done["status"] == "completed", done["errors"]
    assert soft_limits_seen(timeout_cluster, gate) == 1
    timed_out = the_timeout(logs)
    assert timed_out["data"] == {"timeoutS": 1, "stoppedBy": "soft_limit", "attempt": 1}
    assert timed_out["error"].startswith("StepTimeoutError: step timed out after 1 s")
    # ... the retry succeeded, and the agent's slot is free
    assert result(done, "S")["attempt"] == 2 and done["steps"]["S"]["attempts"] == 2
    assert timeout_cluster.agents()["sleeper-001"]["currentLoad"] == 0


def test_an_agent_ignoring_the_soft_limit_is_killed_at_the_hard_one_and_its_retry_succeeds(
    timeout_cluster,
):
    # Given an agent with timeoutS 1 of its own that swallows SoftTimeLimitExceeded once
    gate = uuid.uuid4().hex
    # When its step runs (the step sets no timeout)
    _, done, logs = run_to_the_end(timeout_cluster, step("H", "stubborn_work", gate=gate))
    # Then the soft limit came and was ignored, and the hard limit killed the pool process ...
    assert done["status"] == "completed", done["errors"]
    assert soft_limits_seen(timeout_cluster, gate) == 1
    first_pid = int(redis.Redis.from_url(timeout_cluster.redis_url).lindex(f"test:pids:{gate}", 0))
    wait_for(lambda: not alive(first_pid), 10, what=f"the killed pool process {first_pid} gone")
    assert result(done, "H")["pid"] != first_pid
    # ... whose worker recorded the timeout at once, and the retry succeeded
    timed_out = the_timeout(logs)
    assert timed_out["data"] == {"timeoutS": 1, "stoppedBy": "hard_limit", "attempt": 1}
    assert result(done, "H")["attempt"] == 2
    assert timeout_cluster.agents()["stubborn-001"]["currentLoad"] == 0


def test_in_a_threads_pool_a_run_past_its_timeout_is_abandoned_and_its_retry_succeeds(
    timeout_cluster,
):
    # Given a step with timeoutS 1 whose agent hangs on its first attempt, in a threads pool
    gate = uuid.uuid4().hex
    # When it runs
    session_id, done, logs = run_to_the_end(
        timeout_cluster, {**step("T", "sleepy_threads", gate=gate), "timeoutS": 1}
    )
    # Then no soft limit reached the agent, but the run was abandoned as timed out ...
    assert done["status"] == "completed", done["errors"]
    assert soft_limits_seen(timeout_cluster, gate) == 0
    timed_out = the_timeout(logs)
    assert timed_out["data"] == {"timeoutS": 1, "stoppedBy": "abandoned", "attempt": 1}
    # ... the retry succeeded, and the agent's slot is free
    assert result(done, "T")["attempt"] == 2
    assert timeout_cluster.agents()["sleeper-002"]["currentLoad"] == 0
    # When the abandoned run's agent returns at last
    redis.Redis.from_url(timeout_cluster.redis_url).rpush(f"test:gate:{gate}", "open")
    # Then its outcome is dropped: the record keeps the retry's
    wait_for(
        lambda: any(
            entry["message"] == "Timed-out run ended; its outcome is dropped"
            for entry in timeout_cluster.logs(session_id)
        ),
        20,
        what="the abandoned run's outcome dropped",
    )
    assert result(timeout_cluster.session(session_id), "T")["attempt"] == 2
