"""`meowstik config`: the effective configuration, where each value comes from, secrets masked.

It also generates the README's table of every setting (`meowstik config --markdown`), so the
table is the settings object itself (orchestrator/settings.py) and tests/unit/test_config.py
checks that the README still shows it. Precedence: a command's flag, then the MEOWSTIK_*
environment variable, then the default.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsError

from cli.rendering import render_table
from orchestrator.settings import Settings
from orchestrator.store.connection import redact_url

ENV_PREFIX = "MEOWSTIK_"
SECRET_MASK = "********"
EXIT_INVALID = 2
# the API client commands (cli/client_commands.py, plan_commands.py, ops_commands.py)
CLIENT_COMMANDS = (
    "submit",
    "status",
    "costs",
    "logs",
    "plan",
    "templates",
    "cancel",
    "input",
    "agents",
    "queues",
    "workers",
    "experiments",
)
REGENERATE_COMMAND = ".venv/bin/python -m cli.main config --markdown"
TABLE_START = "<!-- settings-table:start -->"
TABLE_END = "<!-- settings-table:end -->"

# The settings a command-line flag overrides for one run: setting -> {flag: commands having it}.
# Only flags that truly replace the setting's value belong here; tests check that exactly the
# listed commands have each flag.
CLI_FLAGS: dict[str, dict[str, tuple[str, ...]]] = {
    "api_url": {"--api-url": CLIENT_COMMANDS},
    "api_token": {"--api-token": CLIENT_COMMANDS},
    "worker_concurrency": {"--concurrency": ("up", "worker")},
    "worker_pool": {"--pool": ("worker",)},
    "autoscale": {"--autoscale": ("up",)},
}


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `meowstik config` on the `meowstik` command."""
    parser = commands.add_parser(
        "config",
        help="print the effective configuration (MEOWSTIK_* settings), secrets masked",
        description="Print every setting: its environment variable, effective value and source "
        "(env or default); secrets and URL passwords are masked. A command's flag overrides "
        "the environment, which overrides the default.",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a JSON object")
    output.add_argument(
        "--markdown", action="store_true", help="print the README's table of every setting"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of `meowstik config`; returns the process exit code."""
    if args.markdown:  # defaults only: the same table whatever the environment holds
        print(render_markdown())
        return 0
    try:
        settings = Settings()
    except ValidationError as exc:
        print(
            "meowstik config: invalid MEOWSTIK_* settings:\n" + describe_invalid(exc),
            file=sys.stderr,
        )
        return EXIT_INVALID
    except SettingsError as exc:
        print(f"meowstik config: invalid MEOWSTIK_* settings: {exc}", file=sys.stderr)
        return EXIT_INVALID
    rows = effective_rows(settings)
    if args.json:
        print(json.dumps({row["setting"]: _without_name(row) for row in rows}, indent=2))
    else:
        print("\n".join(render_text(rows)))
    return 0


def env_var(name: str) -> str:
    return ENV_PREFIX + name.upper()


def is_secret(name: str) -> bool:
    """Whether the field holds a SecretStr (its value is never printed)."""
    return "SecretStr" in str(Settings.model_fields[name].annotation)


def mask(value: Any) -> Any:
    """``value`` safe to print: a SecretStr as ********; in a URL the password, and query
    parameters like ``password=`` or ``token=``, as ***."""
    if isinstance(value, SecretStr):
        return SECRET_MASK
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


def effective_rows(settings: Settings) -> list[dict[str, Any]]:
    """One row per setting (then the derived Redis URL): setting, env, value (masked), source."""
    rows = [
        {
            "setting": name,
            "env": env_var(name),
            "value": _plain(mask(getattr(settings, name))),
            "source": "env" if name in settings.model_fields_set else "default",
        }
        for name in Settings.model_fields
    ]
    rows.append(
        {
            "setting": "effective_redis_url",
            "env": None,
            "value": mask(settings.effective_redis_url),
            "source": "derived",
        }
    )
    return rows


def render_text(rows: list[dict[str, Any]]) -> list[str]:
    """The rows as aligned columns: setting, environment variable, source, value."""
    return render_table(
        [["SETTING", "ENV VAR", "SOURCE", "VALUE"]]
        + [
            [row["setting"], row["env"] or "-", row["source"], format_value(row["value"])]
            for row in rows
        ]
    )


def render_markdown() -> str:
    """The README table of every setting: variable, default, CLI flag, description."""
    lines = [
        "| Environment variable | Default | CLI flag | Description |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        default = field.get_default()
        shown = "unset" if default is None else f"`{format_value(_plain(default))}`"
        if default == "":
            shown = "empty"
        flags = "; ".join(
            f"`{flag}` ({', '.join(commands)})"
            for flag, commands in CLI_FLAGS.get(name, {}).items()
        )
        cells = [f"`{env_var(name)}`", shown, flags, field.description or ""]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def readme_table(readme: str) -> str | None:
    """The text between the settings-table markers of ``readme``, or None without them."""
    start, end = readme.find(TABLE_START), readme.find(TABLE_END)
    if start < 0 or end < start:
        return None
    return readme[start + len(TABLE_START) : end].strip()


def describe_invalid(exc: ValidationError) -> str:
    """One line per invalid setting, naming its variable; secret inputs are never shown."""
    lines = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        if name in Settings.model_fields:
            variable = env_var(name)
            got = "" if is_secret(name) else f" (got {mask(error.get('input'))!r})"
        else:
            variable, got = name or "settings", ""
        lines.append(f"  {variable}: {error['msg']}{got}")
    return "\n".join(lines)


def format_value(value: Any) -> str:
    """A value as one would write it in the environment variable."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if value == "":
        return "(empty)"
    return str(value)


def _plain(value: Any) -> Any:
    """A JSON-ready value (paths as text)."""
    return str(value) if isinstance(value, Path) else value


def _without_name(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key != "setting"}
