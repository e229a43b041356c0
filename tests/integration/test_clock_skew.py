"""Issue 23's clock-skew line on real Redis and real worker processes: two workers hosting the
same agents, one whose wall clock is 10 minutes ahead and one 10 minutes behind, run a session
whose steps outlive their lease (renewed meanwhile), retry after a backoff, and release each
other; every step runs exactly once and the agents stay active, because every process takes its
time from Redis (orchestrator/store/redis_clock.py), not from its own wall clock. The clocks are
skewed with libfaketime and with a Python-only sitecustomize (tests/support/skew.py)."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import pytest
import redis

from tests.support.cluster import Cluster, wait_for
from tests.support.plans import step
from tests.support.skew import (
    SKEW_KINDS,
    logged_skew_s,
    owner_of,
    skew_env,
    step_records,
    worker_log_lines,
    workers_alive,
)

pytestmark = pytest.mark.integration

SKEW_S = 600
SKEWED_WORKERS = {"ahead": SKEW_S, "behind": -SKEW_S}
SHARED_AGENTS = ("gate-001", "echo-001", "flaky-001")
# gate-001's maxLoad: all gated steps run at once, two on each worker (each runs two at a time)
GATED_STEPS = 4
LEASE_MS = 3000  # MEOWSTIK_LEASE_S in tests/support/cluster.py
TERMINAL = ("completed", "failed", "cancelled")
# how far apart two processes' readings of Redis's clock may be (half a TIME round trip each)
CLOCK_TOLERANCE_S = 0.05


@pytest.fixture(params=SKEW_KINDS)
def skewed_cluster(request, redis_server, tmp_path):
    """The API (its clock right) and the workers ``ahead`` and ``behind``, each hosting
    SHARED_AGENTS two steps at a time, their clocks skewed the ``request.param`` way."""
    redis.Redis.from_url(redis_server.url).flushall()
    cluster = Cluster(redis_server.url, tmp_path, {"MEOWSTIK_PLANNER": "rule"})
    try:
        for name, skew_s in SKEWED_WORKERS.items():
            env = skew_env(request.param, skew_s, cluster)
            cluster.start_worker(name, concurrency=2, agents=",".join(SHARED_AGENTS), env=env)
        cluster.start_api()
        cluster.wait_ready(set(SHARED_AGENTS))
        yield cluster
    finally:
        cluster.stop()


@dataclass
class Liveness:
    """What the API said of the agents' status and the workers' liveness, at every sample."""

    cluster: Cluster
    agent_statuses: Counter = field(default_factory=Counter)
    worker_liveness: Counter = field(default_factory=Counter)

    def sample(self) -> None:
        agents = self.cluster.agents()
        self.agent_statuses.update(f"{a}: {agents[a]['status']}" for a in SHARED_AGENTS)
        alive = workers_alive(self.cluster)
        self.worker_liveness.update(f"{name.split('@')[0]}: {up}" for name, up in alive.items())


def outlived_two_leases(record: dict) -> bool:
    """The run holding the step has renewed its lease two lease lengths after it started (or
    the step was taken from its first run: the failure this test exists to catch)."""
    if int(record.get("attempts") or 0) > 1:
        return True
    lease_until, started = record.get("leaseUntil"), record.get("startedAt")
    if record.get("status") != "running" or lease_until is None or started is None:
        return False
    return int(lease_until) - int(started) >= 3 * LEASE_MS


def test_workers_ten_minutes_apart_run_every_step_once_and_stay_alive(skewed_cluster):
    cluster = skewed_cluster
    client = redis.Redis.from_url(cluster.redis_url)
    # Given two workers hosting the same agents, their clocks 10 minutes ahead and behind
    assert_clocks_skewed(cluster)
    gates = {f"G{i}": uuid.uuid4().hex for i in range(GATED_STEPS)}
    plan = [step(step_id, "gated_work", gate=gate) for step_id, gate in gates.items()]
    plan += [step(f"E{i}", "echo_work", f"G{i % GATED_STEPS}") for i in range(8)]
    plan += [step(f"F{i}", "flaky_work", succeedOn=2) for i in range(4)]  # one retry each
    sid = cluster.submit({"goal": "run on skewed clocks", "plan": {"steps": plan}})["sessionId"]
    liveness = Liveness(cluster)
    # When every gated step runs past two of its leases, renewed by its worker meanwhile
    wait_past_two_leases(client, sid, gates, liveness)
    for gate in gates.values():
        client.lpush(f"test:gate:{gate}", *["open"] * 3)  # enough for any run that waits
    done = wait_for(partial(finished, cluster, sid, liveness), 90, what=f"session {sid} done")
    # Then every step ran exactly once (the flaky ones twice: one retry), with one result each
    assert done["status"] == "completed", done["errors"]
    assert set(done["results"]) == set(done["jobIds"]) and done["completedTasks"] == len(plan)
    expected = {p["id"]: 2 if p["id"].startswith("F") else 1 for p in plan}
    assert {s: r["attempts"] for s, r in done["steps"].items()} == expected
    runs = {s: int(client.get(f"test:runs:{gate}") or 0) for s, gate in gates.items()}
    assert runs == dict.fromkeys(gates, 1)
    # and the log shows those runs only, each retry after its backoff, and no run lost its lease
    assert_runs_logged(cluster.logs(sid), expected)
    for name in SKEWED_WORKERS:
        refused = [line for line in worker_log_lines(cluster, name) if _refused(line)]
        assert refused == [], f"{name} had outcomes refused: {refused}"
    # and both workers ran the long steps
    pids = [int(client.lindex(f"test:pids:{gate}", 0)) for gate in gates.values()]
    assert {owner_of(cluster, pid) for pid in pids} == set(SKEWED_WORKERS)
    # and the API saw the agents active and both workers alive at every sample
    assert set(liveness.agent_statuses) == {f"{a}: active" for a in SHARED_AGENTS}
    assert set(liveness.worker_liveness) == {f"{name}: True" for name in SKEWED_WORKERS}


def assert_clocks_skewed(cluster: Cluster) -> None:
    """Each worker's log lines are stamped with its skewed clock (so the skew took)."""
    for name, skew_s in SKEWED_WORKERS.items():
        logged = wait_for(lambda name=name: logged_skew_s(cluster, name, time.time()), 10)
        assert abs(logged - skew_s) < 60, f"{name}'s log is stamped {logged:+.0f} s off"


def wait_past_two_leases(client: redis.Redis, sid: str, gates: dict, liveness: Liveness) -> None:
    """Wait until every gated step outlived two leases, sampling the API meanwhile; say where
    each step got to if they do not."""

    def outlived() -> bool:
        liveness.sample()
        records = step_records(client, sid)
        return all(outlived_two_leases(records.get(s, {})) for s in gates)

    try:
        wait_for(outlived, 60, what="every gated step running past two leases")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_summary(step_records(client, sid))}\n{liveness}") from None


def finished(cluster: Cluster, sid: str, liveness: Liveness) -> dict | None:
    """The session's snapshot once it ended (None before), sampling the API meanwhile."""
    cluster.check_alive()
    liveness.sample()
    snapshot = cluster.session(sid)
    return snapshot if snapshot["status"] in TERMINAL else None


def assert_runs_logged(logs: list[dict], expected: dict[str, int]) -> None:
    """One "Step started" per expected run, no recovery, no delivery refused, and every retry
    started after its backoff, whichever worker took it (its ETA is on Redis's clock)."""
    assert Counter(e["taskId"] for e in logs if e["message"] == "Step started") == expected
    assert [e for e in logs if e["message"].startswith("Step recovered")] == []
    assert [e for e in logs if e["message"] == "Delivery not run"] == []
    for step_id in (s for s, runs in expected.items() if runs > 1):
        waited_s, backoff_s = _retry_wait_s(logs, step_id)
        assert waited_s >= backoff_s - CLOCK_TOLERANCE_S, f"{step_id} waited {waited_s:.3f} s"


def _refused(line: dict) -> bool:
    """A worker's log line saying a run's outcome was not recorded (stale or duplicate)."""
    message = str(line.get("message", ""))
    return message in ("step stale", "step duplicate") or message.startswith("step stale")


def _retry_wait_s(logs: list[dict], step_id: str) -> tuple[float, float]:
    """How long after its "Step retrying" entry the step started again (both stamped with the
    writing process's clock), and the backoff that entry announced."""
    mine = [e for e in logs if e.get("taskId") == step_id]
    retrying = next(e for e in mine if e["message"] == "Step retrying")
    restarted = max(_at_s(e) for e in mine if e["message"] == "Step started")
    return restarted - _at_s(retrying), float(retrying["data"]["delayS"])


def _at_s(entry: dict) -> float:
    return datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()


def _summary(records: dict[str, dict]) -> str:
    fields = ("status", "attempts", "agentId", "startedAt", "leaseUntil", "queuedAt")
    return "\n".join(
        f"{step_id}: " + ", ".join(f"{name}={record.get(name)}" for name in fields)
        for step_id, record in sorted(records.items())
    )
