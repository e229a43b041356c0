"""`meowstik worker-health --name coder@%h`: whether a worker heartbeats; a container healthcheck.

Exit 0 when the worker's last heartbeat in Redis is still valid (its ``aliveUntil``,
MEOWSTIK_HEARTBEAT_TIMEOUT_S after the beat), 1 otherwise. A worker whose consumer stopped taking
messages stops heartbeating too (workers/hosting.py), so this sees more than a live process, and
it needs no Celery remote control: one HGET. The module imports little (no agents, no Celery
app), because docker-compose.yml runs it as ``python -m cli.worker_health`` every interval.
"""

from __future__ import annotations

import argparse
import sys

from celery.utils.nodenames import default_nodename, host_format

from orchestrator.core.clock import Clock
from orchestrator.core.errors import StoreUnavailableError
from orchestrator.settings import Settings
from orchestrator.store.connection import client_for
from orchestrator.store.keys import Keys
from orchestrator.store.redis_clock import RedisClock
from orchestrator.store.workers import WorkerRegistry

REDIS_TIMEOUT_S = 3.0
EXIT_HEALTHY, EXIT_UNHEALTHY = 0, 1
DESCRIPTION = (
    "Whether the worker named --name heartbeats: exit 0 when its last heartbeat in Redis is still "
    "valid (MEOWSTIK_HEARTBEAT_TIMEOUT_S), 1 otherwise. One read of Redis, no remote control."
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `meowstik worker-health` on the `meowstik` command."""
    parser = commands.add_parser(
        "worker-health",
        help="exit 0 if a worker heartbeats, 1 if not (a container healthcheck)",
        description=DESCRIPTION,
    )
    configure(parser)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--name",
        required=True,
        help="the worker's --name, e.g. coder@%%h (%%h, %%n and %%d expand as Celery expands "
        "them, so the same text names the worker inside its own container)",
    )
    parser.set_defaults(handler=run)


def health(workers: WorkerRegistry, name: str, now_ms: int) -> tuple[bool, str]:
    """Whether the worker ``name`` heartbeats at ``now_ms``, and a line saying why.

    Raises:
        StoreUnavailableError: Redis did not answer.
    """
    alive_until_ms = workers.alive_until(name)
    if alive_until_ms is None:
        return False, f"{name}: no heartbeat yet"
    if alive_until_ms <= now_ms:
        return False, f"{name}: heartbeat lapsed {(now_ms - alive_until_ms) / 1000:.1f} s ago"
    return True, f"{name}: alive"


def run(args: argparse.Namespace, clock: Clock | None = None) -> int:
    """Entry point: print whether the worker is alive; return EXIT_HEALTHY or EXIT_UNHEALTHY.
    ``clock``: Redis's time unless given (the worker's heartbeat is on it, whatever this host's
    clock says)."""
    name = host_format(default_nodename(args.name))
    settings = Settings()
    client = client_for(
        settings, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )
    try:
        workers = WorkerRegistry(client, Keys(settings.key_prefix))
        alive, why = health(workers, name, (clock or RedisClock(client)).now_ms())
    except StoreUnavailableError as exc:
        alive, why = False, f"{name}: cannot read Redis: {exc}"
    finally:
        client.close()
    if not alive:
        print(f"meowstik worker-health: {why}", file=sys.stderr)
        return EXIT_UNHEALTHY
    print(why)
    return EXIT_HEALTHY


def main(argv: list[str] | None = None) -> int:
    """``python -m cli.worker_health``: the same command without loading the whole CLI."""
    parser = argparse.ArgumentParser(prog="meowstik worker-health", description=DESCRIPTION)
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
