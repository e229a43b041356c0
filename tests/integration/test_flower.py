"""Flower against our cluster, and our Flower-compatible endpoints against Flower: real Flower
(the PyPI package) started on our broker lists our workers with their capability queues, and
our own /api/workers names the same workers and queues."""

import subprocess

import pytest
import requests

from cli.commands import flower_command
from tests.support.cluster import REPO_ROOT, wait_for
from tests.support.plans import step
from tests.support.redis_server import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def flower(cluster, tmp_path_factory):
    port = free_port()
    log = open(tmp_path_factory.mktemp("flower") / "flower.log", "wb")  # noqa: SIM115
    # the command `meowstik up --flower` and docker-compose run
    command = [*flower_command("127.0.0.1", port), "--inspect_timeout=3000"]
    # Flower 2 serves its API only with auth, or when told to run open (loopback here)
    env = {**cluster.env, "FLOWER_UNAUTHENTICATED_API": "true"}
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, f"flower exited with {process.returncode}"
        try:
            return requests.get(f"{url}/healthcheck", timeout=2).text == "OK"
        except requests.RequestException:
            return False

    try:
        wait_for(up, 60, interval_s=0.2, what="flower answering /healthcheck")
        yield url
    finally:
        process.terminate()
        process.wait(15)
        log.close()


def flower_workers(flower_url: str) -> dict:
    response = requests.get(f"{flower_url}/api/workers", params={"refresh": "1"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_real_flower_lists_our_workers_with_their_capability_queues(cluster, flower):
    workers = wait_for(
        lambda: (
            (found := flower_workers(flower))
            and any(name.startswith("worker@") for name in found)
            and found
        ),
        60,
        interval_s=0.5,
        what="flower to see the cluster's worker",
    )
    name = next(n for n in workers if n.startswith("worker@"))
    queues = {queue["name"] for queue in workers[name]["active_queues"]}
    assert {"cap.echo_work", "cap.web_research", "agent.echo-001"} <= queues
    # and our own Flower-compatible endpoint names the same worker with the same queues
    ours = requests.get(f"{cluster.api_url}/api/workers", timeout=10).json()
    assert name in ours and ours[name]["alive"] is True
    assert {q["name"] for q in ours[name]["active_queues"]} == queues


def test_flower_style_tools_see_our_steps_as_tasks(cluster):
    done = cluster.wait_session(
        cluster.submit({"goal": "flower tasks", "plan": {"steps": [step("F", "echo_work")]}})[
            "sessionId"
        ]
    )
    task_id = f"{done['sessionId']}.F"
    info = requests.get(f"{cluster.api_url}/api/task/info/{task_id}", timeout=10).json()
    assert info["state"] == "SUCCESS" and info["worker"].startswith("worker@")
    listed = requests.get(
        f"{cluster.api_url}/api/tasks", params={"state": "SUCCESS", "limit": 1000}, timeout=10
    ).json()
    assert task_id in listed
    lengths = requests.get(f"{cluster.api_url}/api/queues/length", timeout=10).json()
    assert "cap.echo_work" in {q["name"] for q in lengths["active_queues"]}
