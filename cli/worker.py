"""`meowstik worker`: a Celery worker process hosting some agents, consuming their queues."""

from __future__ import annotations

import argparse
import sys

from celery.signals import setup_logging

from orchestrator.core.errors import AgentCatalogError, EvictionPolicyError
from orchestrator.jsonlog import configure_logging
from orchestrator.settings import Settings
from workers.agents.base import ReplicaAgent
from workers.agents.catalog import load_agents
from workers.celery_app import create_celery_app
from workers.hosting import default_concurrency, host_agents, worker_queues

REMOTE_CONCURRENCY = 16  # HTTP and LLM calls wait on the network: threads, and more of them


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("worker", help="run a worker hosting agents")
    parser.add_argument(
        "--agents", default="", help="comma-separated agent ids (default: all known)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="processes (default: sum of maxLoad, up to 8)"
    )
    parser.add_argument("--pool", default=None, choices=["prefork", "threads", "solo"])
    parser.add_argument("--name", default=None, help="Celery node name, e.g. coder@%%h")
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument(
        "--remote",
        action="store_true",
        help="also execute HTTP and LLM agents registered over the API (queue executor.remote)",
    )
    parser.add_argument(
        "--replica",
        type=int,
        default=None,
        metavar="N",
        help="host replica N (2 and up) of the one agent in --agents, under the id <agent>.rN "
        "(how `meowstik up --autoscale` adds capacity)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    try:
        catalog = load_agents(settings)
    except AgentCatalogError as exc:
        print(f"meowstik worker: {exc}", file=sys.stderr)
        return 2
    requested = [name.strip() for name in args.agents.split(",") if name.strip()]
    wanted = requested or ([] if args.remote else sorted(catalog))
    unknown = [name for name in wanted if name not in catalog]
    if unknown:
        print(
            f"meowstik worker: unknown agent id(s) {', '.join(unknown)}; known: "
            f"{', '.join(sorted(catalog))}",
            file=sys.stderr,
        )
        return 2
    hosted = {name: catalog[name] for name in wanted}
    if args.replica is not None:
        if len(hosted) != 1 or args.remote:
            print("meowstik worker: --replica needs exactly one agent in --agents", file=sys.stderr)
            return 2
        try:
            replica = ReplicaAgent(next(iter(hosted.values())), args.replica)
        except ValueError as exc:
            print(f"meowstik worker: --replica: {exc}", file=sys.stderr)
            return 2
        hosted = {replica.definition.id: replica}
    app = create_celery_app(settings)
    # Celery leaves logging to us when setup_logging has a receiver: structured JSON lines
    setup_logging.connect(
        lambda **_: configure_logging(settings.log_format, args.loglevel), weak=False
    )
    try:
        host_agents(app, settings, hosted, remote=args.remote)
    except EvictionPolicyError as exc:
        print(f"meowstik worker: {exc}", file=sys.stderr)
        return 2
    concurrency = (
        args.concurrency
        or settings.worker_concurrency
        or (
            REMOTE_CONCURRENCY
            if args.remote and not hosted
            else default_concurrency(hosted.values())
        )
    )
    pool = args.pool or ("threads" if args.remote and not hosted else settings.worker_pool)
    kinds = sorted(
        {a.definition.type for a in hosted.values()} | ({"remote"} if args.remote else set())
    )
    name = args.name or f"{'+'.join(kinds)}@%h"
    app.worker_main(
        [
            "worker",
            "--queues",
            ",".join(worker_queues(hosted.values(), remote=args.remote)),
            "--concurrency",
            str(concurrency),
            "--pool",
            pool,
            "--hostname",
            name,
            "--loglevel",
            args.loglevel,
            "--without-mingle",
            "--without-gossip",
        ]
    )
    return 0
