"""The `meowstik` command: local cluster, worker, and API server."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meowstik", description="Meowstik orchestration")
    commands = parser.add_subparsers(dest="command", required=True)

    from cli import up, worker

    up.add_parser(commands)
    worker.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
