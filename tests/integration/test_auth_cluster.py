"""Tokens and isolation against a real cluster bound to every address with auth on: gunicorn on
0.0.0.0, a worker, clients reaching it over the machine's own non-loopback address, the CLI, and
the dashboard's login in a real browser. Also: nothing starts open on a non-loopback address."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid

import pytest
import redis
import requests

from tests.conftest import require
from tests.integration.test_dashboard_browser import browser, page  # noqa: F401 - fixtures
from tests.support.cluster import REPO_ROOT, Cluster, cluster_env, wait_for
from tests.support.plans import step
from tests.support.redis_server import free_port

pytestmark = pytest.mark.integration

ADMIN = "admin-" + uuid.uuid4().hex
ALICE = "alice-" + uuid.uuid4().hex
BOB = "bob-" + uuid.uuid4().hex
TOKENS = f"ops:admin:{ADMIN},alice:user:{ALICE},bob:user:{BOB}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def outward_address() -> str | None:
    """An address of this machine other than loopback (no packet is sent)."""
    for target in ("10.255.255.254", "203.0.113.1", "198.51.100.1"):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.connect((target, 9))  # picks the route's source address; sends nothing
            address = probe.getsockname()[0]
        except OSError:
            continue
        finally:
            probe.close()
        if not address.startswith("127."):
            return address
    return None


@pytest.fixture(scope="module")
def secured(redis_server, tmp_path_factory):
    redis.Redis.from_url(redis_server.url).flushall()
    running = Cluster(
        redis_server.url,
        tmp_path_factory.mktemp("auth-cluster"),
        {"MEOWSTIK_API_TOKENS": TOKENS, "MEOWSTIK_PLANNER": "rule"},
    )
    running.headers = bearer(ADMIN)
    try:
        running.start_worker(concurrency=2, agents="echo-001,gate-001")
        running.start_api(host="0.0.0.0")
        running.wait_ready({"echo-001", "gate-001"})
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def outside(secured) -> str:
    """The API's URL over a non-loopback address of this machine."""
    address = outward_address()
    require(address is not None, "a non-loopback IPv4 address on this machine")
    return f"http://{address}:{secured.port}"


def plan_body(marker: str) -> dict:
    return {
        "goal": f"echo {marker}",
        "plan": {"steps": [step("a", "echo_work", say=marker), step("b", "echo_work", "a")]},
    }


def test_a_user_runs_a_session_over_a_non_loopback_address_and_others_cannot_see_it(
    secured, outside
):
    url = f"{outside}/api/orchestrator"
    assert requests.post(f"{url}/orchestrate", json=plan_body("x"), timeout=10).status_code == 401
    response = requests.post(
        f"{url}/orchestrate", json=plan_body("alice"), headers=bearer(ALICE), timeout=10
    )
    assert response.status_code == 202, response.text
    sid = response.json()["sessionId"]
    assert response.json()["userId"] == "alice"

    def finished():
        snapshot = requests.get(f"{url}/sessions/{sid}", headers=bearer(ALICE), timeout=10).json()
        return snapshot if snapshot["status"] in ("completed", "failed") else None

    assert wait_for(finished, 60, what="alice's session")["status"] == "completed"

    for path in (f"sessions/{sid}", f"sessions/{sid}/logs", f"sessions/{sid}/events"):
        response = requests.get(f"{url}/{path}", headers=bearer(BOB), timeout=10)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "session_not_found"
    listed = requests.get(f"{url}/sessions", headers=bearer(BOB), timeout=10).json()
    assert sid not in {row["sessionId"] for row in listed["sessions"]}
    listed = requests.get(f"{url}/sessions", headers=bearer(ADMIN), timeout=10).json()
    assert sid in {row["sessionId"] for row in listed["sessions"]}
    # the owner follows it live over SSE with the same token
    with requests.get(
        f"{url}/sessions/{sid}/events", headers=bearer(ALICE), stream=True, timeout=10
    ) as events:
        assert events.status_code == 200
        assert events.headers["Content-Type"].startswith("text/event-stream")


def test_a_user_token_cannot_change_the_fleet_and_an_admin_token_can(secured, outside):
    url = f"{outside}/api/orchestrator/agents/echo-001"
    response = requests.patch(url, json={"status": "draining"}, headers=bearer(ALICE), timeout=10)
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert secured.agents()["echo-001"]["status"] == "active"
    response = requests.patch(url, json={"priority": 3}, headers=bearer(ADMIN), timeout=10)
    assert response.status_code == 200 and response.json()["priority"] == 3


def test_the_cli_sends_its_token_and_sees_only_its_own_sessions(secured):
    sid = secured.submit({**plan_body("cli"), "userId": "alice"})["sessionId"]
    secured.wait_session(sid)

    def cli(*args: str, token: str | None) -> subprocess.CompletedProcess:
        env = cluster_env(secured.redis_url, MEOWSTIK_API_URL=secured.api_url)
        if token:
            env["MEOWSTIK_API_TOKEN"] = token
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    mine = cli("status", sid, token=ALICE)
    assert mine.returncode == 0, mine.stderr
    assert "completed" in mine.stdout
    theirs = cli("status", sid, token=BOB)
    assert theirs.returncode != 0 and sid in theirs.stderr
    anonymous = cli("status", sid, token=None)
    assert anonymous.returncode != 0 and "MEOWSTIK_API_TOKEN" in anonymous.stderr + anonymous.stdout


def test_the_dashboard_logs_in_with_a_token_and_cancels_with_its_csrf_token(secured, page):  # noqa: F811
    gate = uuid.uuid4().hex
    body = {
        "goal": "held at a gate",
        "userId": "alice",
        "plan": {"steps": [step("held", "gated_work", gate=gate)]},
    }
    sid = secured.submit(body)["sessionId"]
    page.goto(f"{secured.api_url}/sessions/{sid}")
    assert "/login" in page.url
    page.fill("input[name=token]", BOB)
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text().startswith("No session")  # bob: 404 page
    page.click("nav form.logout button")
    page.goto(f"{secured.api_url}/sessions/{sid}")
    page.fill("input[name=token]", ALICE)
    page.click("button[type=submit]")
    assert page.url.endswith(f"/sessions/{sid}")
    assert "alice (user)" in page.locator("nav").inner_text()
    page.click("#cancel")
    assert secured.wait_session(sid)["status"] == "cancelled"
    redis.Redis.from_url(secured.redis_url).rpush(f"test:gate:{gate}", "open")


def test_an_api_bound_beyond_loopback_without_tokens_refuses_to_start(redis_server, tmp_path):
    from cli.commands import api_command

    env = cluster_env(redis_server.url)
    started = subprocess.run(
        api_command("0.0.0.0", free_port(), 1, 2),
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert "refusing to listen on 0.0.0.0" in started.stderr
    assert "MEOWSTIK_API_TOKENS" in started.stderr
    up = subprocess.run(
        [sys.executable, "-m", "cli.main", "up"],
        cwd=tmp_path,
        env={**env, "MEOWSTIK_API_HOST": "0.0.0.0", "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert up.returncode == 2 and "MEOWSTIK_API_TOKENS" in up.stderr
    assert not (tmp_path / ".meowstik").exists()  # refused before starting anything
