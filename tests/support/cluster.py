"""A real cluster for integration tests: worker and API processes on a test Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from cli.commands import api_command
from tests.support.redis_server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_AGENT_MODULE = "tests.support.agents"


def wait_for(
    predicate: Callable[[], Any],
    timeout_s: float = 30.0,
    interval_s: float = 0.05,
    what: str = "condition",
) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last value: {last!r}")


def cluster_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEOWSTIK_")}
    env.update(
        {
            "MEOWSTIK_REDIS_URL": redis_url,
            "MEOWSTIK_AGENT_MODULES": TEST_AGENT_MODULE,
            "MEOWSTIK_LEASE_S": "3",
            "MEOWSTIK_HEARTBEAT_INTERVAL_S": "1",
            "MEOWSTIK_HEARTBEAT_TIMEOUT_S": "3",
            "PYTHONPATH": str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        }
    )
    env.update(extra)
    return env


class Cluster:
    def __init__(self, redis_url: str, log_dir: Path, env_extra: dict[str, str] | None = None):
        self.redis_url = redis_url
        self.log_dir = log_dir
        self.env = cluster_env(redis_url, **(env_extra or {}))
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, subprocess.Popen] = {}
        self.status_reads = 0
        # sent with every request: set {"Authorization": "Bearer ..."} for a cluster with tokens
        self.headers: dict[str, str] = {}

    def _spawn(
        self, name: str, command: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def start_worker(
        self,
        name: str = "worker",
        concurrency: int = 4,
        agents: str = "",
        *,
        remote: bool = False,
        pool: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen:
        """Start ``meowstik worker``; ``env``: variables for this process only (over the
        cluster's)."""
        command = [sys.executable, "-m", "cli.main", "worker", "--concurrency", str(concurrency)]
        command += ["--name", f"{name}@%h", "--loglevel", "INFO"]
        if agents:
            command += ["--agents", agents]
        if remote:
            command.append("--remote")
        if pool:
            command += ["--pool", pool]
        return self._spawn(name, command, env)

    def kill(self, name: str) -> None:
        """SIGKILL a process and its whole group (a worker and its pool), and forget it."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def agents(self) -> dict[str, dict]:
        response = requests.get(
            f"{self.api_url}/api/orchestrator/agents", headers=self.headers, timeout=10
        )
        assert response.status_code == 200, response.text
        return {agent["id"]: agent for agent in response.json()["agents"]}

    def start_api(self, host: str = "127.0.0.1") -> subprocess.Popen:
        return self._spawn("api", api_command(host, self.port, 1, 8))

    def wait_ready(self, agent_ids: set[str], timeout_s: float = 60.0) -> None:
        def ready() -> bool:
            self.check_alive()
            try:
                agents = requests.get(
                    f"{self.api_url}/api/orchestrator/agents", headers=self.headers, timeout=2
                ).json()
            except requests.RequestException:
                return False
            active = {a["id"] for a in agents["agents"] if a["status"] == "active"}
            return agent_ids <= active

        wait_for(ready, timeout_s, interval_s=0.1, what=f"agents {sorted(agent_ids)} active")

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                log = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"{name} exited with {process.returncode}:\n{log}")

    def submit(self, body: dict) -> dict:
        response = requests.post(
            f"{self.api_url}/api/orchestrator/orchestrate",
            json=body,
            headers=self.headers,
            timeout=10,
        )
        assert response.status_code == 202, response.text
        return response.json()

    def session(self, session_id: str) -> dict:
        self.status_reads += 1
        response = requests.get(
            f"{self.api_url}/api/orchestrator/sessions/{session_id}",
            headers=self.headers,
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()

    def wait_session(
        self,
        session_id: str,
        statuses=("completed", "failed", "cancelled"),
        timeout_s: float = 60.0,
    ) -> dict:
        def finished() -> dict | None:
            self.check_alive()
            snapshot = self.session(session_id)
            return snapshot if snapshot["status"] in statuses else None

        return wait_for(finished, timeout_s, what=f"session {session_id} in {statuses}")

    def logs(self, session_id: str) -> list[dict]:
        """Every log entry of the session, oldest first (all pages)."""
        entries: list[dict] = []
        cursor = None
        while True:
            response = requests.get(
                f"{self.api_url}/api/orchestrator/sessions/{session_id}/logs",
                params={"limit": 1000, **({"cursor": cursor} if cursor else {})},
                headers=self.headers,
                timeout=10,
            )
            assert response.status_code == 200, response.text
            page = response.json()
            entries += page["logs"]
            cursor = page["nextCursor"]
            if not cursor:
                return entries

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


@contextmanager
def model_cluster(
    redis_url: str,
    log_dir: Path,
    model_url: str,
    agents: str,
    *,
    model: str = "wire-model",
    prices_file: Path | None = None,
    concurrency: int = 2,
    env: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    """A worker hosting ``agents`` (comma-separated ids) whose model is the OpenAI-compatible API
    at ``model_url`` (the test tools loaded, goals planned by rules, ``prices_file`` pricing the
    calls when given), and the API, on a flushed Redis; stopped at the end."""
    import redis

    redis.Redis.from_url(redis_url).flushall()
    env = {
        **(env or {}),
        "MEOWSTIK_LLM_BASE_URL": model_url,
        "MEOWSTIK_LLM_MODEL": model,
        "MEOWSTIK_PLANNER": "rule",
        "MEOWSTIK_TOOL_MODULES": "tests.support.tools",
    }
    if prices_file is not None:
        env["MEOWSTIK_PRICES_FILE"] = str(prices_file)
    running = Cluster(redis_url, log_dir, env)
    try:
        running.start_worker(concurrency=concurrency, agents=agents)
        running.start_api()
        running.wait_ready(set(agents.split(",")))
        yield running
    finally:
        running.stop()
