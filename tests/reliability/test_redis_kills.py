"""Issue 23: no session or step result acknowledged to a client is lost to a Redis crash.

200 sessions are submitted while the Redis server is SIGKILLed every few seconds and started again
on the same data, with the disk kept busy (a slow fsync is what made Redis 6.2 answer writes it
had not yet written to its append-only file under ``appendfsync everysec``: 157 of 1503
sessions accepted with a 202 were gone after the restarts in such a run). Afterwards every
session that got a 202 must exist and complete with one result per step.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from cli.embedded_redis import EmbeddedRedis
from tests.support.cluster import Cluster
from tests.support.plans import step
from tests.support.redis_server import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SESSIONS = 200
SUBMITTERS = 4
SUBMIT_PAUSE_S = 0.35  # per submitter: ~10 submissions a second, so the kills fall among them
KILL_EVERY_S = (1.0, 3.0)
AGENTS = "echo-001"


def plan_for(n: int) -> dict:
    """A chain for even n, a fan-out and fan-in for odd n."""
    if n % 2 == 0:
        steps = [step("A", "echo_work"), step("B", "echo_work", "A"), step("C", "echo_work", "B")]
    else:
        steps = [
            step("R", "echo_work"),
            step("X", "echo_work", "R"),
            step("Y", "echo_work", "R"),
            step("J", "echo_work", "X", "Y"),
        ]
    return {"goal": f"survive redis kills #{n}", "plan": {"steps": steps}}


class DiskBusy(threading.Thread):
    """Keeps the disk busy with large fsynced writes, as a loaded host does (slow AOF fsyncs)."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.stopped = path, threading.Event()

    def run(self) -> None:
        block = os.urandom(4 << 20)
        while not self.stopped.is_set():
            with open(self.path, "wb") as file:
                for _ in range(64):  # 256 MiB, then fsync and start over
                    if self.stopped.is_set():
                        break
                    file.write(block)
                file.flush()
                os.fsync(file.fileno())
        self.path.unlink(missing_ok=True)


class Submitters:
    """Threads posting sessions until SESSIONS got a 202; they keep each 202's session id."""

    def __init__(self, api_url: str) -> None:
        self.api_url, self.accepted, self.refused = api_url, [], 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(SUBMITTERS)]

    def run(self) -> None:
        while True:
            with self.lock:
                if len(self.accepted) >= SESSIONS:
                    return
                n = len(self.accepted) + self.refused
            try:
                response = requests.post(
                    f"{self.api_url}/api/orchestrator/orchestrate", json=plan_for(n), timeout=10
                )
            except requests.RequestException:
                response = None
            with self.lock:
                if response is not None and response.status_code == 202:
                    self.accepted.append(response.json()["sessionId"])
                else:
                    self.refused += 1
            time.sleep(SUBMIT_PAUSE_S)  # pacing the load, not waiting for anything

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)


def test_every_session_answered_202_survives_redis_sigkills_and_completes(tmp_path):
    # Given a cluster on its own Redis (the embedded server's AOF settings) and a busy disk
    server = EmbeddedRedis(tmp_path / "redis-data", free_port())
    server.start()
    cluster = Cluster(server.url, tmp_path, {"MEOWSTIK_WORKER_REMOTE_CONTROL": "false"})
    cluster.start_worker(concurrency=3, agents=AGENTS)
    cluster.start_api()
    cluster.wait_ready({AGENTS})
    disk = DiskBusy(tmp_path / "busy.bin")
    disk.start()
    submitters = Submitters(cluster.api_url)
    rng, kills = random.Random(23), 0
    try:
        # When 200 sessions are submitted while Redis is SIGKILLed every 1-3 s and restarted
        for thread in submitters.threads:
            thread.start()
        while submitters.running():
            time.sleep(rng.uniform(*KILL_EVERY_S))  # the fault's timing, not a wait
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait(10)
            kills += 1
            server = EmbeddedRedis(tmp_path / "redis-data", server.port)
            server.start()
        disk.stopped.set()
        assert kills >= 3 and submitters.refused > 0, (kills, submitters.refused)
        # Then every session that got a 202 exists, and completes with one result per step
        lost = [sid for sid in submitters.accepted if _status_code(cluster, sid) != 200]
        assert not lost, f"{len(lost)} of {len(submitters.accepted)} accepted sessions lost"
        for sid in submitters.accepted:
            done = cluster.wait_session(sid, timeout_s=120)
            assert done["status"] == "completed", (sid, done["errors"])
            assert set(done["results"]) == set(done["jobIds"])
            assert done["completedTasks"] == len(done["jobIds"]) == len(done["steps"])
    finally:
        disk.stopped.set()
        cluster.stop()
        server.stop()


def _status_code(cluster: Cluster, sid: str) -> int:
    url = f"{cluster.api_url}/api/orchestrator/sessions/{sid}"
    return requests.get(url, timeout=10).status_code
