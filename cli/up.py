"""`meowstik up`: the local cluster in the foreground.

It starts an embedded Redis (unless MEOWSTIK_REDIS_URL names one), the API under gunicorn, and one
`meowstik worker` per hosted agent; waits until the API is healthy and every hosted agent is
active; prints the URLs; restarts children that crash; and on Ctrl-C (SIGINT, or SIGTERM to its
process group) stops everything it started. A lock on the data dir keeps a second `up` off it.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import importlib.util
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import requests
from pydantic import ValidationError

from cli.autoscale import Autoscaler
from cli.commands import (
    api_command,
    flower_command,
    remote_worker_command,
    worker_command,
)
from cli.embedded_redis import EmbeddedRedis, redis_answers
from cli.supervisor import ManagedProcess, Supervisor, SupervisorError, ensure_port_free
from orchestrator.core.access import TokenConfigError, is_loopback, raw_tokens
from orchestrator.core.fleet import DEFAULT_AGENTS
from orchestrator.core.models import AgentDefinition
from orchestrator.settings import Settings
from orchestrator.store.connection import redact_url
from workers.agents.base import replica_id
from workers.agents.catalog import AgentCatalogError, load_agents

DEFAULT_FLOWER_PORT = 5555
REDIS_START_TIMEOUT_S = 15.0
DEFAULT_STARTUP_TIMEOUT_S = 90.0
HTTP_PROBE_TIMEOUT_S = 2.0
LOCK_FILE_NAME = "up.lock"
AGENTS_PATH = "/api/orchestrator/agents"
HEALTH_PATH = "/healthz"
AGENTS_BY_ID = {agent.id: agent for agent in DEFAULT_AGENTS}
EXAMPLE_BODY = (
    '{"goal": "Research and implement user authentication", "userId": "user-123", '
    '"chatId": "chat-456"}'
)


class AlreadyRunningError(SupervisorError):
    def __init__(self, lock_path: Path, holder_pid: int | None) -> None:
        self.lock_path = lock_path
        self.holder_pid = holder_pid
        holder = f"pid {holder_pid}" if holder_pid else "pid unknown"
        super().__init__(
            f"meowstik up is already running on data dir {lock_path.parent} ({holder}). "
            "Stop it with Ctrl-C (or kill -TERM the pid), "
            "or set MEOWSTIK_DATA_DIR to another directory."
        )


def _agent_ids(text: str) -> list[AgentDefinition]:
    """Agent ids known to this installation: the built-in fleet, MEOWSTIK_AGENT_MODULES and
    the meowstik.agents entry points."""
    try:
        known = {a.definition.id: a.definition for a in load_agents(Settings()).values()}
    except AgentCatalogError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    ids = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [agent_id for agent_id in ids if agent_id not in known]
    if not ids or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown agent ids {unknown or [text]}; choose from {', '.join(sorted(known))}"
        )
    return [known[agent_id] for agent_id in dict.fromkeys(ids)]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `meowstik up` and its flags on the `meowstik` command."""
    parser = subparsers.add_parser(
        "up",
        help="run the local cluster (Redis, API, workers) in the foreground",
        description="Run the local cluster in the foreground; Ctrl-C stops everything it started.",
    )
    parser.add_argument(
        "--workers",
        type=_agent_ids,
        default=list(DEFAULT_AGENTS),
        metavar="IDS",
        help="comma-separated agent ids to host, one worker each "
        f"(default: {','.join(AGENTS_BY_ID)})",
    )
    parser.add_argument(
        "--concurrency", type=_positive_int, default=None, help="concurrency of each worker"
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=DEFAULT_STARTUP_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for the API and agents (default: {DEFAULT_STARTUP_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--flower",
        type=_positive_int,
        nargs="?",
        const=DEFAULT_FLOWER_PORT,
        default=None,
        metavar="PORT",
        help=f"also run Flower on 127.0.0.1 (default port {DEFAULT_FLOWER_PORT}); "
        "its API is open, so only on loopback",
    )
    parser.add_argument(
        "--autoscale",
        action="store_true",
        default=None,
        help="add agent replicas (worker processes) while an agent's backlog stays deep and "
        "remove idle ones (MEOWSTIK_AUTOSCALE; limits: MEOWSTIK_AUTOSCALE_*)",
    )
    parser.set_defaults(handler=run)


class DataDirLock:
    """An exclusive flock on <data_dir>/up.lock, held while this `up` runs; it holds our pid."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Raises AlreadyRunningError if another process holds the lock."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise AlreadyRunningError(
                self.path, int(holder) if holder.isdigit() else None
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True)
class ClusterPlan:
    """What `up` will run, derived from settings and flags (no I/O)."""

    settings: Settings
    data_dir: Path
    agents: list[AgentDefinition]
    concurrency: int | None
    startup_timeout_s: float
    flower_port: int | None = None

    @property
    def embedded(self) -> bool:
        return not self.settings.redis_url

    @property
    def probe_headers(self) -> dict[str, str]:
        """How `up` itself calls its API: MEOWSTIK_API_TOKEN, else the first configured token."""
        s = self.settings
        token = s.api_token.get_secret_value() if s.api_token else None
        if token is None:
            configured = raw_tokens(
                s.api_tokens.get_secret_value() if s.api_tokens else None, s.api_tokens_file
            )
            token = configured[0][2] if configured else None
        return {"Authorization": f"Bearer {token}"} if token else {}

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def api_url(self) -> str:
        host = self.settings.api_host
        probe_host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(
            host, f"[{host}]" if ":" in host else host
        )
        return f"http://{probe_host}:{self.settings.api_port}"

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["MEOWSTIK_REDIS_URL"] = self.settings.effective_redis_url
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def app_children(self) -> list[ManagedProcess]:
        """The API, one worker per agent and one for remote agents; they stop before Redis."""
        env = self.child_env()
        s = self.settings
        api = ManagedProcess(
            "api",
            api_command(s.api_host, s.api_port, s.api_processes, s.api_threads),
            env,
            self.log_dir / "api.log",
        )
        workers = [
            ManagedProcess(
                f"worker {agent.id}",
                worker_command(agent, concurrency=self.concurrency),
                env,
                self.log_dir / f"worker-{agent.id}.log",
            )
            for agent in self.agents
        ]
        remote = ManagedProcess(
            "worker remote", remote_worker_command(), env, self.log_dir / "worker-remote.log"
        )
        extra = []
        if self.flower_port is not None:
            # Flower 2 refuses an open API unless told; it listens on loopback only
            flower_env = {**env, "FLOWER_UNAUTHENTICATED_API": "true"}
            command = flower_command(s.effective_redis_url, "127.0.0.1", self.flower_port)
            extra.append(ManagedProcess("flower", command, flower_env, self.log_dir / "flower.log"))
        return [api, *workers, remote, *extra]

    def replica_child(self, agent: AgentDefinition, number: int) -> ManagedProcess:
        """Replica ``number`` of a hosted agent's worker (`--autoscale`)."""
        return ManagedProcess(
            f"worker {replica_id(agent.id, number)}",
            worker_command(agent, concurrency=self.concurrency, replica=number),
            self.child_env(),
            self.log_dir / f"worker-{replica_id(agent.id, number)}.log",
        )


def run(args: argparse.Namespace) -> int:
    """Entry point of `meowstik up`; returns the process exit code."""
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"meowstik up: invalid MEOWSTIK_* settings:\n{exc}", file=sys.stderr)
        return 2
    try:
        tokens = settings.token_table()
    except TokenConfigError as exc:
        print(f"meowstik up: {exc}", file=sys.stderr)
        return 2
    if not tokens.enabled and not is_loopback(settings.api_host):
        print(
            f"meowstik up: MEOWSTIK_API_HOST={settings.api_host} would serve other hosts without "
            "authentication; set MEOWSTIK_API_TOKENS (entries user_id:role:token) or use 127.0.0.1",
            file=sys.stderr,
        )
        return 2
    if args.autoscale:
        settings = settings.model_copy(update={"autoscale": True})
    data_dir = settings.data_dir.resolve()
    if args.flower is not None and importlib.util.find_spec("flower") is None:
        print("meowstik up: --flower needs Flower: pip install flower", file=sys.stderr)
        return 2
    plan = ClusterPlan(
        settings, data_dir, args.workers, args.concurrency, args.startup_timeout, args.flower
    )
    plan.log_dir.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor()
    # Handlers go in before the lock is taken, so a Ctrl-C at any later moment stops cleanly.
    supervisor.install_signal_handlers()
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
        return _run_cluster(supervisor, plan)
    except AlreadyRunningError as exc:
        print(f"meowstik up: {exc}", file=sys.stderr)
        return 1
    finally:
        supervisor.restore_signal_handlers()
        lock.release()


def _run_cluster(supervisor: Supervisor, plan: ClusterPlan) -> int:
    """Start the cluster, keep it up until a stop signal, then stop it; return the exit code."""
    print(f"meowstik up (pid {os.getpid()}): starting; data dir {plan.data_dir}", flush=True)
    autoscaler: Autoscaler | None = None
    try:
        if not _start(supervisor, plan):
            return 0
        print(_banner(plan), flush=True)
        if plan.settings.autoscale:
            autoscaler = Autoscaler(supervisor, plan.settings, plan.agents, plan.replica_child)
            autoscaler.start()
            supervisor.run_until_stopped(autoscaler.tick, plan.settings.autoscale_interval_s)
        else:
            supervisor.run_until_stopped()
        return 0
    except SupervisorError as exc:
        print(f"meowstik up: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if supervisor.children:
            print("meowstik up: stopping workers and API, then Redis", flush=True)
            # replicas are deregistered once their workers stopped, while Redis still runs
            supervisor.shutdown(after_first_stage=autoscaler.stop if autoscaler else None)
        print("meowstik up: stopped", flush=True)


def _start(supervisor: Supervisor, plan: ClusterPlan) -> bool:
    """Start Redis, then the API and workers, and wait until they serve; False if interrupted."""
    s = plan.settings
    ensure_port_free(s.api_host, s.api_port, setting="MEOWSTIK_API_PORT")
    if not _start_redis(supervisor, plan):
        return False
    for child in plan.app_children():
        supervisor.start(child)
    api_url = plan.api_url
    if not supervisor.wait_until(
        lambda: _http_ok(api_url + HEALTH_PATH),
        what=f"the API at {api_url}{HEALTH_PATH} (log: {plan.log_dir / 'api.log'})",
        timeout_s=plan.startup_timeout_s,
    ):
        return False
    if plan.flower_port is not None and not supervisor.wait_until(
        lambda: _http_ok(f"http://127.0.0.1:{plan.flower_port}/healthcheck"),
        what=f"Flower on port {plan.flower_port} (log: {plan.log_dir / 'flower.log'})",
        timeout_s=plan.startup_timeout_s,
    ):
        return False
    agent_ids = [agent.id for agent in plan.agents]
    return supervisor.wait_until(
        lambda: _agents_active(api_url, agent_ids, plan.probe_headers),
        what=f"agents {', '.join(agent_ids)} to be active at {api_url}{AGENTS_PATH} "
        f"(logs: {plan.log_dir})",
        timeout_s=plan.startup_timeout_s,
    )


def _start_redis(supervisor: Supervisor, plan: ClusterPlan) -> bool:
    """Start the embedded Redis, or check that the configured one answers; False if interrupted."""
    s = plan.settings
    if plan.embedded:
        embedded = EmbeddedRedis(plan.data_dir, s.embedded_redis_port)
        embedded.prepare()
        supervisor.start(
            ManagedProcess("redis", embedded.command(), None, embedded.log_path, stop_stage=1)
        )
        ping = embedded.ping
        what = f"the embedded Redis at {embedded.url} (log: {embedded.log_path})"
    else:
        ping = functools.partial(redis_answers, s.effective_redis_url, s.redis_sentinel_master)
        what = f"Redis at {redact_url(s.effective_redis_url)} (MEOWSTIK_REDIS_URL)"
    return supervisor.wait_until(ping, what=what, timeout_s=REDIS_START_TIMEOUT_S)


def _http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=HTTP_PROBE_TIMEOUT_S).status_code == 200
    except requests.RequestException:
        return False


def _agents_active(api_url: str, agent_ids: Sequence[str], headers: dict[str, str]) -> bool:
    """Whether the API lists every hosted agent with status "active"."""
    try:
        response = requests.get(
            api_url + AGENTS_PATH, headers=headers, timeout=HTTP_PROBE_TIMEOUT_S
        )
        listed = response.json().get("agents", []) if response.status_code == 200 else []
    except (requests.RequestException, ValueError, AttributeError):
        return False
    active = {
        agent.get("id")
        for agent in listed
        if isinstance(agent, dict) and agent.get("status") == "active"
    }
    return set(agent_ids) <= active


def _banner(plan: ClusterPlan) -> str:
    api = plan.api_url
    redis_kind = (
        f"embedded, AOF in {plan.data_dir / 'redis'}" if plan.embedded else "MEOWSTIK_REDIS_URL"
    )
    # The dashboard line appears only once the API serves one, so no printed URL answers 404.
    dashboard = [f"  Dashboard:  {api}/"] if _http_ok(api + "/") else []
    tokens = plan.settings.token_table()
    if tokens.enabled:
        auth = [
            f"  Auth:       on, {tokens.summary()} (MEOWSTIK_API_TOKENS); dashboard login at "
            f"{api}/login"
        ]
        read_auth = '-H "Authorization: Bearer $MEOWSTIK_API_TOKEN" '
        curl_auth = [f"       {read_auth}\\"]
    else:
        auth = [
            "  Auth:       OFF: the API is open and answers loopback clients only "
            "(set MEOWSTIK_API_TOKENS to require tokens)"
        ]
        read_auth, curl_auth = "", []
    return "\n".join(
        [
            "meowstik up: ready",
            f"  API:        {api}/api/orchestrator",
            *dashboard,
            f"  Health:     {api}{HEALTH_PATH}",
            *auth,
            *([f"  Flower:     http://127.0.0.1:{plan.flower_port}/"] if plan.flower_port else []),
            f"  Redis:      {redact_url(plan.settings.effective_redis_url)} ({redis_kind})",
            f"  Data dir:   {plan.data_dir}",
            f"  Logs:       {plan.log_dir}",
            f"  Agents:     {', '.join(agent.id for agent in plan.agents)}",
            "Try:",
            f"  curl -s -X POST {api}/api/orchestrator/orchestrate \\",
            "       -H 'Content-Type: application/json' \\",
            *curl_auth,
            f"       -d '{EXAMPLE_BODY}'",
            f"  curl -s {read_auth}{api}/api/orchestrator/sessions/<sessionId>",
            "Press Ctrl-C to stop.",
        ]
    )
