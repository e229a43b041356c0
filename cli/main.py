"""The `meowstik` command: local cluster, worker, and the API client commands."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer killed by SIGPIPE
DISTRIBUTION = "meowstik-orchestration"


def package_version() -> str:
    """The installed distribution's version (pyproject.toml's, once installed); "unknown" when
    the code runs from a source tree that was never installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meowstik", description="Meowstik orchestration")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    from cli import client_commands, config_command, up, worker, worker_health

    up.add_parser(commands)
    worker.add_parser(commands)
    worker_health.add_parser(commands)
    client_commands.add_parsers(commands)
    config_command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits 2 on a usage error; 2 means "cancelled" for `submit --follow`, so a
        # usage error is reported as 3 (bad input) like the commands' own input errors
        return 3 if exc.code == 2 else int(exc.code or 0)
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:
        # `meowstik agents | head`: the reader left; say nothing more, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
