"""The commands of the cluster's processes, shared by `meowstik up`, docker-compose.yml (checked
equal by tests/unit/test_compose.py) and the tests' own clusters."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from orchestrator.core.models import AgentDefinition

API_GRACEFUL_TIMEOUT_S = 10


def api_command(
    host: str, port: int, processes: int, threads: int, *, python: str = sys.executable
) -> list[str]:
    """The API server command: gunicorn with threaded workers, shared by `up` and docker-compose."""
    return [
        python, "-m", "gunicorn",
        "--bind", f"{host}:{port}",
        "--workers", str(processes),
        "--worker-class", "gthread",
        "--threads", str(threads),
        "--graceful-timeout", str(API_GRACEFUL_TIMEOUT_S),
        "--config", "python:api.gunicorn_conf",
        "api:create_app()",
    ]  # fmt: skip


def worker_command(
    agent: AgentDefinition,
    *,
    concurrency: int | None = None,
    program: Sequence[str] | None = None,
    replica: int | None = None,
) -> list[str]:
    """The `meowstik worker` command hosting one agent, shared by `up` and docker-compose.

    Args:
        program: how to invoke `meowstik`; defaults to this interpreter running cli.main.
        replica: host replica N (2 and up) of the agent instead (`up --autoscale`).
    """
    prefix = list(program) if program is not None else [sys.executable, "-m", "cli.main"]
    node = f"{agent.type}@%h" if replica is None else f"{agent.type}-r{replica}@%h"
    command = [*prefix, "worker", "--agents", agent.id, "--name", node]
    if replica is not None:
        command += ["--replica", str(replica)]
    if concurrency is not None:
        command += ["--concurrency", str(concurrency)]
    return command


def remote_worker_command(*, program: Sequence[str] | None = None) -> list[str]:
    """The worker executing HTTP and LLM agents registered over the API (queue executor.remote)."""
    prefix = list(program) if program is not None else [sys.executable, "-m", "cli.main"]
    return [*prefix, "worker", "--remote", "--name", "remote@%h"]


def flower_command(host: str, port: int, *, program: Sequence[str] | None = None) -> list[str]:
    """Flower (the PyPI package) on our broker, shared by `up --flower` and docker-compose.

    It runs with the workers' Celery app (workers/flower_app.py, configured from the MEOWSTIK_*
    environment): a bare ``--broker`` URL would miss the key prefix of the broker's keys.
    """
    prefix = list(program) if program is not None else [sys.executable, "-m", "celery"]
    # Flower's own options (tornado's parser) take only the --name=value form
    return [*prefix, "-A", "workers.flower_app", "flower", f"--address={host}", f"--port={port}"]
