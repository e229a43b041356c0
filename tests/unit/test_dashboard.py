"""The dashboard's pages through Flask's test client: what they show, and that everything
users and agents wrote is escaped. (tests/integration/test_dashboard_browser.py drives them in
a real browser.)"""

import time

import pytest

from api import create_app
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from orchestrator.store.keys import Keys
from orchestrator.store.workers import WorkerRegistry
from tests.support.recording import RecordingDispatcher
from tests.support.world import build_world

HOSTILE = "<script>window.__xss = 1</script>"


@pytest.fixture
def env(fake_redis):
    settings = Settings()
    world = build_world(fake_redis, settings, prefix=settings.key_prefix)
    app = create_app(settings, redis_client=fake_redis, dispatcher=RecordingDispatcher())
    return app.test_client(), world


def submit(client, goal, steps):
    body = {"goal": goal, "userId": "ann", "plan": {"steps": steps}}
    response = client.post("/api/orchestrator/orchestrate", json=body)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["sessionId"]


def step(step_id, *deps):
    return {
        "id": step_id,
        "title": step_id,
        "requiredCapabilities": ["web_research"],
        "dependsOn": list(deps),
    }


def test_the_sessions_page_lists_sessions_with_progress_and_escapes_goals(env):
    client, _ = env
    sid = submit(client, f"goal {HOSTILE}", [step("a")])
    page = client.get("/").get_data(as_text=True)
    assert sid in page and "0/1" in page and "ann" in page
    assert HOSTILE not in page and "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in page
    filtered = client.get("/?status=completed").get_data(as_text=True)
    assert sid not in filtered and "match the filter" in filtered


def test_the_session_page_draws_every_step_and_escapes_outputs(env):
    client, world = env
    sid = submit(client, "graph", [step("a"), step("b", "a"), step("c", "a")])
    run = world.lifecycle.begin(sid, "a", "researcher-001")
    world.lifecycle.succeed(run, StepResult({"note": HOSTILE}))
    response = client.get(f"/sessions/{sid}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    for step_id, state in (("a", "completed"), ("b", "queued"), ("c", "queued")):
        assert f'class="node state-{state}" data-step="{step_id}"' in page
    assert page.count('class="edge"') == 2
    assert HOSTILE not in page and "&lt;script&gt;" in page
    assert 'id="cancel"' in page and "Waiting for input" in page


def test_an_unknown_session_page_is_a_404_page(env):
    client, _ = env
    response = client.get("/sessions/orch-1-nope")
    assert response.status_code == 404 and "No session orch-1-nope" in response.get_data(
        as_text=True
    )


def test_agents_queues_and_workers_pages_show_the_cluster(env, fake_redis):
    client, _ = env
    WorkerRegistry(fake_redis, Keys("meowstik")).heartbeat(
        "w1@host",
        {"queues": ["agent.researcher-001", "cap.web_research"], "agents": ["researcher-001"]},
        now_ms=int(time.time() * 1000),
        alive_ms=60_000,
    )
    fake_redis.rpush("cap.web_research", "waiting")
    agents = client.get("/agents").get_data(as_text=True)
    assert "researcher-001" in agents and "0/3" in agents and "Drain" in agents
    queues = client.get("/queues").get_data(as_text=True)
    row = '<tr data-queue="cap.web_research"><td><code>cap.web_research</code></td>'
    assert row + '<td class="depth">1</td><td>w1@host</td>' in queues
    workers = client.get("/workers").get_data(as_text=True)
    assert "w1@host" in workers and "online" in workers


def test_the_dashboards_script_and_styles_are_served(env):
    client, _ = env
    assert client.get("/dashboard/static/dashboard.js").status_code == 200
    assert client.get("/dashboard/static/dashboard.css").status_code == 200
