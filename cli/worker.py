"""`meowstik worker`: a Celery worker process hosting some agents, consuming their queues."""

from __future__ import annotations

import argparse
import sys

from orchestrator.settings import Settings
from workers.agents.catalog import AgentCatalogError, load_agents
from workers.celery_app import create_celery_app
from workers.hosting import default_concurrency, host_agents, worker_queues


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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    try:
        catalog = load_agents(settings)
    except AgentCatalogError as exc:
        print(f"meowstik worker: {exc}", file=sys.stderr)
        return 2
    wanted = [name.strip() for name in args.agents.split(",") if name.strip()] or sorted(catalog)
    unknown = [name for name in wanted if name not in catalog]
    if unknown:
        print(
            f"meowstik worker: unknown agent id(s) {', '.join(unknown)}; known: "
            f"{', '.join(sorted(catalog))}",
            file=sys.stderr,
        )
        return 2
    hosted = {name: catalog[name] for name in wanted}
    app = create_celery_app(settings)
    host_agents(app, settings, hosted)
    concurrency = (
        args.concurrency or settings.worker_concurrency or default_concurrency(hosted.values())
    )
    name = args.name or f"{'+'.join(sorted({a.definition.type for a in hosted.values()}))}@%h"
    app.worker_main(
        [
            "worker",
            "--queues",
            ",".join(worker_queues(hosted.values())),
            "--concurrency",
            str(concurrency),
            "--pool",
            args.pool or settings.worker_pool,
            "--hostname",
            name,
            "--loglevel",
            args.loglevel,
            "--without-mingle",
            "--without-gossip",
        ]
    )
    return 0
