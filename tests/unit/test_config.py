"""`meowstik config`: every setting with its source, secrets masked, and the README's table."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from cli.config_command import (
    CLI_FLAGS,
    REGENERATE_COMMAND,
    SECRET_MASK,
    mask,
    readme_table,
    render_markdown,
)
from cli.main import build_parser, main
from orchestrator.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
LLM_KEY = "sk-very-secret-llm-key"
API_TOKEN = "tok-very-secret-api-token"
REDIS_PASSWORD = "redis-pw-secret"
REDIS_URL = f"redis://user:{REDIS_PASSWORD}@host:6379/0"
SECRETS = (LLM_KEY, API_TOKEN, REDIS_PASSWORD)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MEOWSTIK_* variable from the caller's environment leaks into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("MEOWSTIK_"):
            monkeypatch.delenv(name)


@pytest.fixture
def secrets_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEOWSTIK_LLM_API_KEY", LLM_KEY)
    monkeypatch.setenv("MEOWSTIK_API_TOKEN", API_TOKEN)
    monkeypatch.setenv("MEOWSTIK_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("MEOWSTIK_LLM_BASE_URL", f"https://bot:{REDIS_PASSWORD}@llm.example/v1")


def run_config(capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str, str]:
    code = main(["config", *flags])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def config_json(capsys: pytest.CaptureFixture[str]) -> dict:
    code, out, _ = run_config(capsys, "--json")
    assert code == 0
    return json.loads(out)


def test_text_output_masks_every_secret(capsys, secrets_set) -> None:
    code, out, err = run_config(capsys)

    assert code == 0, err
    for secret in SECRETS:
        assert secret not in out + err
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert lines["llm_api_key"].split()[-1] == SECRET_MASK
    assert lines["api_token"].split()[-1] == SECRET_MASK
    assert lines["redis_url"].split()[-1] == "redis://user:***@host:6379/0"
    assert lines["effective_redis_url"].split()[-1] == "redis://user:***@host:6379/0"
    assert lines["llm_base_url"].split()[-1] == "https://bot:***@llm.example/v1"


def test_json_output_masks_every_secret(capsys, secrets_set) -> None:
    code, out, err = run_config(capsys, "--json")

    assert code == 0, err
    for secret in SECRETS:
        assert secret not in out + err
    config = json.loads(out)
    assert config["llm_api_key"] == {
        "env": "MEOWSTIK_LLM_API_KEY",
        "value": SECRET_MASK,
        "source": "env",
    }
    assert config["api_token"]["value"] == SECRET_MASK
    assert config["redis_url"]["value"] == "redis://user:***@host:6379/0"
    assert config["effective_redis_url"] == {
        "env": None,
        "value": "redis://user:***@host:6379/0",
        "source": "derived",
    }


def test_unset_secrets_show_as_unset(capsys) -> None:
    config = config_json(capsys)

    assert config["llm_api_key"]["value"] is None
    assert config["api_token"]["value"] is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://default:pw@h:6380/1", "rediss://default:***@h:6380/1"),
        ("sentinel://:pw@h1:26379,h2:26379/0", "sentinel://:***@h1:26379,h2:26379/0"),
        ("unix:///tmp/redis.sock?db=0&password=pw", "unix:///tmp/redis.sock?db=0&password=***"),
        ("redis://127.0.0.1:6399/0", "redis://127.0.0.1:6399/0"),
        ("http://u:pw@[::1/v1", "http://u:***@[::1/v1"),  # unparseable: masked by pattern
    ],
)
def test_mask_hides_url_passwords(url: str, shown: str) -> None:
    assert mask(url) == shown


def test_sources_tell_env_from_default(capsys, monkeypatch) -> None:
    monkeypatch.setenv("MEOWSTIK_API_PORT", "5050")
    monkeypatch.setenv("MEOWSTIK_WORKER_REMOTE_CONTROL", "false")

    config = config_json(capsys)

    assert config["api_port"] == {"env": "MEOWSTIK_API_PORT", "value": 5050, "source": "env"}
    assert config["worker_remote_control"]["value"] is False
    assert config["worker_remote_control"]["source"] == "env"
    assert config["api_host"] == {
        "env": "MEOWSTIK_API_HOST",
        "value": "127.0.0.1",
        "source": "default",
    }
    assert config["effective_redis_url"]["value"] == "redis://127.0.0.1:6399/0"
    defaults = {name for name, row in config.items() if row["source"] == "default"}
    assert defaults == set(Settings.model_fields) - {"api_port", "worker_remote_control"}


def test_text_output_lists_every_setting_with_its_source(capsys, monkeypatch) -> None:
    monkeypatch.setenv("MEOWSTIK_API_PORT", "5050")

    code, out, _ = run_config(capsys)

    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert set(rows) == {*Settings.model_fields, "effective_redis_url"}
    assert rows["api_port"] == ["api_port", "MEOWSTIK_API_PORT", "env", "5050"]
    assert rows["api_host"] == ["api_host", "MEOWSTIK_API_HOST", "default", "127.0.0.1"]


def test_every_setting_is_described_and_in_the_table() -> None:
    table = render_markdown()

    for name, field in Settings.model_fields.items():
        assert field.description, f"Settings.{name} has no description"
        assert f"| `MEOWSTIK_{name.upper()}` |" in table, name
    assert len(table.splitlines()) == 2 + len(Settings.model_fields)


def test_markdown_table_ignores_the_environment(capsys, monkeypatch) -> None:
    monkeypatch.setenv("MEOWSTIK_API_PORT", "not-a-port")

    code, out, _ = run_config(capsys, "--markdown")

    assert code == 0
    assert out.strip() == render_markdown()


def test_readme_shows_the_current_settings_table() -> None:
    block = readme_table(README.read_text(encoding="utf-8"))

    assert block is not None, "README.md lacks the settings-table markers"
    assert block == render_markdown(), (
        "README.md's settings table is out of date; regenerate it with "
        f"`{REGENERATE_COMMAND}` and paste the output between the settings-table markers"
    )


def subcommand_flags(parser: argparse.ArgumentParser) -> dict[str, set[str]]:
    """Every subcommand of the parser and the option strings it accepts."""
    flags: dict[str, set[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, subparser in action.choices.items():
                flags[command] = {
                    option
                    for sub_action in subparser._actions
                    for option in sub_action.option_strings
                }
    return flags


@pytest.mark.parametrize(
    ("setting", "flag", "command"),
    [
        (setting, flag, command)
        for setting, by_flag in CLI_FLAGS.items()
        for flag, commands in by_flag.items()
        for command in commands
    ],
)
def test_every_listed_flag_exists(setting: str, flag: str, command: str) -> None:
    assert setting in Settings.model_fields
    flags = subcommand_flags(build_parser())
    assert command in flags, f"no `meowstik {command}`"
    assert flag in flags[command], f"`meowstik {command}` has no {flag} (for {setting})"


@pytest.mark.parametrize(
    "flag", sorted({flag for by_flag in CLI_FLAGS.values() for flag in by_flag})
)
def test_every_command_with_a_listed_flag_is_listed(flag: str) -> None:
    """The table names every command taking the flag, so it stays true as commands are added."""
    listed = {command for by_flag in CLI_FLAGS.values() for command in by_flag.get(flag, ())}
    having = {
        command for command, flags in subcommand_flags(build_parser()).items() if flag in flags
    }
    assert having == listed, f"{flag}: update CLI_FLAGS in cli/config_command.py"


def test_invalid_env_names_the_variable_and_exits_2(capsys, monkeypatch) -> None:
    monkeypatch.setenv("MEOWSTIK_API_PORT", "abc")

    for flags in ((), ("--json",)):
        code, out, err = run_config(capsys, *flags)

        assert code == 2
        assert out == ""
        assert "MEOWSTIK_API_PORT" in err
        assert "'abc'" in err
        assert "Traceback" not in err


def test_invalid_env_never_shows_a_secret(capsys, monkeypatch) -> None:
    monkeypatch.setenv("MEOWSTIK_WORKER_POOL", "bogus")
    monkeypatch.setenv("MEOWSTIK_LLM_API_KEY", LLM_KEY)
    monkeypatch.setenv("MEOWSTIK_REDIS_URL", REDIS_URL)

    code, out, err = run_config(capsys)

    assert code == 2
    assert "MEOWSTIK_WORKER_POOL" in err
    for secret in SECRETS:
        assert secret not in out + err
