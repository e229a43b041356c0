"""The cluster `make chaos` runs and breaks: the embedded Redis (cli.embedded_redis, AOF on, as
`meowstik up` runs it), the API under gunicorn, two workers hosting one Python agent each and
two remote workers executing the slow HTTP agent. Every worker reaches Redis through its own
TcpProxy, so it can be cut off alone; the API reaches Redis directly.

Like `meowstik up`, it restarts a worker that exits by itself (kombu's worker exits when its
pub/sub connection to Redis breaks, docs/architecture.md) and counts those exits; a worker the
driver killed is restarted when the driver says.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis
import requests

from cli.commands import api_command
from cli.embedded_redis import EmbeddedRedis
from cli.processes import ManagedProcess, has_exited, reap_process_group, stop_process_groups
from tools.chaos_agents import HTTP_AGENT, PYTHON_AGENTS, PYTHON_MAX_LOAD
from tools.chaos_http import SlowHttpAgent
from tools.tcp_proxy import TcpProxy

REPO_ROOT = Path(__file__).resolve().parents[1]
LEASE_S = 3.0
# Short timings so that a lost run is taken over within seconds (the defaults are 15 s, 5 s,
# 15 s and 60 s): the faults then last seconds too, and a run sees many of them.
CLUSTER_SETTINGS = {
    "MEOWSTIK_AGENT_MODULES": "tools.chaos_agents",
    "MEOWSTIK_LEASE_S": str(LEASE_S),
    "MEOWSTIK_HEARTBEAT_INTERVAL_S": "1",
    "MEOWSTIK_HEARTBEAT_TIMEOUT_S": "3",
    "MEOWSTIK_RESERVATION_S": "10",
    "MEOWSTIK_PLANNER": "rule",
}
REMOTE_CONCURRENCY = 4
API_THREADS = 8
START_TIMEOUT_S = 90.0
POLL_S = 0.1


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Worker:
    """A worker process, its proxy to Redis, and what happened to it."""

    child: ManagedProcess
    proxy: TcpProxy
    remote: bool
    restart_at: float | None = None  # killed on purpose: start again then
    unplanned_exits: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.child.name

    @property
    def pid(self) -> int | None:
        process = self.child.process
        return process.pid if process is not None and not has_exited(process) else None

    def pool_children(self) -> list[psutil.Process]:
        pid = self.pid
        if pid is None:  # psutil.Process(None) would be this process
            return []
        with contextlib.suppress(psutil.Error):
            return psutil.Process(pid).children()
        return []


class ChaosCluster:
    """``start()``, then ``supervise()`` on every turn of the driver, ``stop()`` at the end."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.log_dir = data_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.beacons = data_dir / "beacons"
        self.beacons.mkdir(exist_ok=True)
        self.redis = EmbeddedRedis(data_dir, free_port())
        self.api_port = free_port()
        self.http_agent = SlowHttpAgent()
        self.workers: dict[str, Worker] = {}
        self.api: ManagedProcess | None = None
        self.api_exits: list[dict] = []
        self.redis_restart_at: float | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self, redis_url: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEOWSTIK_")}
        env.update(CLUSTER_SETTINGS)
        env["MEOWSTIK_REDIS_URL"] = redis_url
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        return env

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis.url, socket_timeout=2, socket_connect_timeout=1)

    # --- start and stop ------------------------------------------------------------------------

    def start(self) -> None:
        """Redis, the HTTP agent's endpoint, the API, the workers; returns when all serve."""
        self.redis.start()
        self.http_agent.start()
        api = api_command("127.0.0.1", self.api_port, 1, API_THREADS)
        self.api = ManagedProcess("api", api, self.env(self.redis.url), self.log_dir / "api.log")
        self.api.start(time.monotonic())
        program = [sys.executable, "-m", "cli.main", "worker", "--loglevel", "INFO"]
        for name, agent_id in (("py-a", PYTHON_AGENTS[0]), ("py-b", PYTHON_AGENTS[1])):
            argv = [*program, "--agents", agent_id, "--name", f"{name}@%h"]
            self._add_worker(name, [*argv, "--concurrency", str(PYTHON_MAX_LOAD)], remote=False)
        for name in ("remote-1", "remote-2"):
            argv = [*program, "--remote", "--name", f"{name}@%h"]
            self._add_worker(name, [*argv, "--concurrency", str(REMOTE_CONCURRENCY)], remote=True)
        self._wait(self._api_healthy, "the API's /healthz")
        self._register_http_agent()
        self._wait(self._agents_active, f"agents {', '.join((*PYTHON_AGENTS, HTTP_AGENT))} active")

    def _add_worker(self, name: str, argv: list[str], *, remote: bool) -> None:
        proxy = TcpProxy(("127.0.0.1", self.redis.port), name).start()
        child = ManagedProcess(name, argv, self.env(proxy.url), self.log_dir / f"{name}.log")
        child.start(time.monotonic())
        self.workers[name] = Worker(child, proxy, remote)

    def _register_http_agent(self) -> None:
        response = requests.post(
            f"{self.api_url}/api/orchestrator/agents",
            json=self.http_agent.registration(),
            timeout=10,
        )
        if response.status_code not in (201, 409):
            raise RuntimeError(
                f"registering the HTTP agent: {response.status_code} {response.text}"
            )

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {START_TIMEOUT_S:.0f} s waiting for {what}")
            self.supervise()
            time.sleep(POLL_S)

    def _api_healthy(self) -> bool:
        with contextlib.suppress(requests.RequestException):
            return requests.get(f"{self.api_url}/healthz", timeout=2).status_code == 200
        return False

    def _agents_active(self) -> bool:
        try:
            agents = requests.get(f"{self.api_url}/api/orchestrator/agents", timeout=2).json()
        except (requests.RequestException, ValueError):
            return False
        active = {a["id"] for a in agents.get("agents", []) if a["status"] == "active"}
        return {*PYTHON_AGENTS, HTTP_AGENT} <= active

    def stop(self) -> None:
        """Resume what is frozen, heal every proxy, then stop workers and API, then Redis."""
        for worker in self.workers.values():
            self.resume(worker)
            worker.proxy.heal()
        children = [w.child.process for w in self.workers.values()]
        if self.api is not None:
            children.append(self.api.process)
        stop_process_groups([p for p in children if p is not None], grace_s=10)
        for worker in self.workers.values():
            worker.proxy.close()
        self.redis.stop()
        self.http_agent.close()

    # --- faults the driver asks for ----------------------------------------------------------

    def kill_worker(self, worker: Worker, restart_after_s: float) -> None:
        """SIGKILL the worker's whole process group; start it again ``restart_after_s`` later."""
        if worker.child.process is not None:
            reap_process_group(worker.child.process)
        worker.restart_at = time.monotonic() + restart_after_s

    def freeze(self, worker: Worker) -> None:
        if worker.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGSTOP)

    def resume(self, worker: Worker) -> None:
        if worker.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGCONT)

    def kill_redis(self, restart_after_s: float) -> None:
        """SIGKILL redis-server (no AOF rewrite, no fsync on exit); restart it on the same data
        directory and port ``restart_after_s`` later (``supervise``)."""
        process = self.redis.process
        if process is not None:
            reap_process_group(process)
            self.redis.process = None
        self.redis_restart_at = time.monotonic() + restart_after_s

    @property
    def redis_up(self) -> bool:
        return self.redis.process is not None

    # --- supervision ----------------------------------------------------------------------------

    def supervise(self) -> None:
        """Restart Redis and killed workers when due, and workers or the API that exited."""
        now = time.monotonic()
        if self.redis_restart_at is not None and now >= self.redis_restart_at:
            self.redis_restart_at = None
            self.redis.start()
        for worker in self.workers.values():
            process = worker.child.process
            if worker.restart_at is not None:
                if now >= worker.restart_at:
                    worker.restart_at = None
                    worker.child.start(now)
            elif process is not None and has_exited(process):
                code = reap_process_group(process)
                worker.unplanned_exits.append(
                    {"exitCode": code, "logTail": worker.child.log_tail()[-2000:]}
                )
                worker.child.start(now)
        if self.api is not None and self.api.process is not None and has_exited(self.api.process):
            code = reap_process_group(self.api.process)
            self.api_exits.append({"exitCode": code, "logTail": self.api.log_tail()[-2000:]})
            self.api.start(now)
