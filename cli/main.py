"""The `meowstik` command: local cluster, worker, and the API client commands."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meowstik", description="Meowstik orchestration")
    commands = parser.add_subparsers(dest="command", required=True)

    from cli import client_commands, up, worker

    up.add_parser(commands)
    worker.add_parser(commands)
    client_commands.add_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits 2 on a usage error; 2 means "cancelled" for `submit --follow`, so a
        # usage error is reported as 3 (bad input) like the commands' own input errors
        return 3 if exc.code == 2 else int(exc.code or 0)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
