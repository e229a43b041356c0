"""Issue 23's frozen-worker line on real Redis and real worker processes: a worker stopped
(SIGSTOP, as a VM paused or a process stuck in swap) past the lease of the step it runs loses
the step to another worker, and when it wakes up its late run changes nothing."""

from __future__ import annotations

import os
import signal
import uuid
from dataclasses import dataclass

import pytest
import redis

from tests.support.cluster import Cluster, wait_for
from tests.support.plans import step
from tests.support.skew import KEYS, owner_of, worker_log_lines

pytestmark = pytest.mark.integration

AGENTS = ("victim-001", "echo-001")
WORKERS = ("first", "second")


@pytest.fixture
def two_workers(redis_server, tmp_path):
    """Two workers hosting AGENTS, one step at a time each (so a worker running a step has no
    request for another message pending at Redis), and the API."""
    redis.Redis.from_url(redis_server.url).flushall()
    cluster = Cluster(redis_server.url, tmp_path, {"MEOWSTIK_PLANNER": "rule"})
    try:
        for name in WORKERS:
            cluster.start_worker(name, concurrency=1, agents=",".join(AGENTS))
        cluster.start_api()
        cluster.wait_ready(set(AGENTS))
        yield cluster
    finally:
        for process in cluster.processes.values():  # a failed test may leave one stopped
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGCONT)
        cluster.stop()


def test_a_frozen_worker_loses_its_step_and_its_late_result_changes_nothing(two_workers):
    cluster = two_workers
    client = redis.Redis.from_url(cluster.redis_url)
    gate = uuid.uuid4().hex
    plan = {"steps": [step("K", "victim_work", gate=gate), step("E", "echo_work", "K")]}
    sid = cluster.submit({"goal": "freeze the worker", "plan": plan})["sessionId"]
    first_pid = int(wait_for(lambda: client.lindex(f"test:pids:{gate}", 0), 30, what="K started"))
    frozen = owner_of(cluster, first_pid)
    # When that whole worker (main process and pool) is frozen past K's lease, K is taken back
    # and completed on the other worker before the frozen one wakes up
    takeover = freeze_while_taken_over(cluster, client, sid, gate, frozen)
    assert takeover.done["status"] == "completed", takeover.done["errors"]
    assert owner_of(cluster, takeover.second_pid) != frozen
    # and the frozen worker's late run of K returns
    late = wait_for(lambda: _refusals(cluster, frozen, sid), 30, what="the late run's outcome")

    # Then its outcome was refused: K was already completed by the other worker
    assert [(line["message"], line["pid"]) for line in late] == [("step duplicate", first_pid)]
    # and nothing it could have changed did: one result, the survivor's; K ran twice in all
    after = cluster.session(sid)
    assert after["results"] == takeover.done["results"] and after["status"] == "completed"
    output = after["results"][f"{sid}.K"]
    assert output["pid"] == takeover.second_pid and output["attempt"] == 2
    assert {s: r["attempts"] for s, r in after["steps"].items()} == {"K": 2, "E": 1}
    messages = [e["message"] for e in takeover.logs if e.get("taskId") == "K"]
    assert messages.count("Step completed") == 1
    assert messages.count("Step recovered after its deadline passed") == 1
    assert_counted_once(client, sid)
    # and the agent's load and slots are free again
    assert client.zcard(KEYS.agent_slots("victim-001")) == 0
    assert cluster.agents()["victim-001"]["currentLoad"] == 0
    # and the refused late completion wrote nothing to the session's log either
    late_entries = [
        (e.get("taskId"), e["message"]) for e in cluster.logs(sid)[len(takeover.logs) :]
    ]
    assert late_entries == []


@dataclass(frozen=True)
class Takeover:
    second_pid: int  # the process that ran K again
    done: dict  # the session when it completed, the frozen worker still stopped
    logs: list[dict]  # and its log then


def freeze_while_taken_over(
    cluster: Cluster, client: redis.Redis, sid: str, gate: str, frozen: str
) -> Takeover:
    """SIGSTOP ``frozen``'s process group until K runs again elsewhere and the session
    completes; SIGCONT it whatever happens."""
    group = cluster.processes[frozen].pid
    os.killpg(group, signal.SIGSTOP)
    try:
        second = wait_for(lambda: client.lindex(f"test:pids:{gate}", 1), 30, what="K rerun")
        # two openings: Redis serves the frozen run's waiting BLPOP first
        client.lpush(f"test:gate:{gate}", "open", "open")
        done = cluster.wait_session(sid)
        return Takeover(int(second), done, cluster.logs(sid))
    finally:
        os.killpg(group, signal.SIGCONT)


def assert_counted_once(client: redis.Redis, sid: str) -> None:
    """K's outcome counters: completed once, its agent's first run timed out, the second
    succeeded; both runs counted their CPU and wall time (they both ran, as every run does)."""
    assert _counter(client, KEYS.step_counts, "victim_work|completed") == 1
    durations = client.hgetall(KEYS.step_durations)
    assert sum(int(n) for f, n in durations.items() if f.startswith(b"victim_work|le=")) == 1
    metrics = client.hgetall(KEYS.agent_metrics("victim-001"))
    counted = {o: int(metrics.get(o.encode(), 0)) for o in ("started", "succeeded", "timed_out")}
    assert counted == {"started": 2, "succeeded": 1, "timed_out": 1}
    assert _counter(client, KEYS.costs(sid), "s|K|runs") == 2


def _refusals(cluster: Cluster, name: str, session_id: str) -> list[dict]:
    """The lines of worker ``name``'s log saying K's outcome was not recorded."""
    return [
        line
        for line in worker_log_lines(cluster, name)
        if line.get("sessionId") == session_id
        and line.get("stepId") == "K"
        and str(line.get("message", "")).startswith("step ")
        and line["message"] != "step completed"
    ]


def _counter(client: redis.Redis, key: str, field: str) -> int:
    return int(client.hget(key, field) or 0)
