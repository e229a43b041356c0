"""`meowstik-api`: the API alone, under gunicorn, for hosts that run it without `meowstik up`.

It runs the command `meowstik up` and docker-compose.yml run (``cli.commands.api_command``:
threaded gunicorn workers and api/gunicorn_conf.py, which refuses a non-loopback bind without
MEOWSTIK_API_TOKENS), bound to MEOWSTIK_API_HOST:MEOWSTIK_API_PORT with MEOWSTIK_API_PROCESSES
and MEOWSTIK_API_THREADS. The process becomes gunicorn (exec), so signals reach it directly:
SIGTERM is gunicorn's graceful stop.
"""

from __future__ import annotations

import argparse
import os
import sys

from pydantic import ValidationError

from cli.commands import api_command
from cli.main import package_version
from orchestrator.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meowstik-api",
        description="Serve the Meowstik API under gunicorn on MEOWSTIK_API_HOST:MEOWSTIK_API_PORT "
        "(Redis from MEOWSTIK_REDIS_URL; tokens from MEOWSTIK_API_TOKENS, required on any "
        "address but loopback). Any further arguments go to gunicorn.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `meowstik-api`: exec gunicorn; returns only on a settings error (2)."""
    _, gunicorn_args = build_parser().parse_known_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"meowstik-api: invalid MEOWSTIK_* settings:\n{exc}", file=sys.stderr)
        return 2
    command = api_command(
        settings.api_host, settings.api_port, settings.api_processes, settings.api_threads
    )
    # gunicorn's options go before the application (the command's last argument)
    command = [*command[:-1], *gunicorn_args, command[-1]]
    sys.stdout.flush()
    os.execv(command[0], command)
    return 0  # not reached: execv replaces this process


if __name__ == "__main__":
    sys.exit(main())
