"""The dashboard's pages through Flask's test client: what they show, and that everything
users and agents wrote is escaped. (tests/integration/test_dashboard_browser.py drives them in
a real browser.)"""

import re
import time

import pytest

from api import create_app
from api.routes.dashboard import compact_json, duration_words
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


def put_state(client, sid, key, body):
    response = client.put(f"/api/orchestrator/sessions/{sid}/state/{key}", json=body)
    assert response.status_code == 200, response.get_json()


def test_the_session_page_says_no_state_yet_before_any_is_written(env):
    client, _ = env
    sid = submit(client, "no state", [step("a")])
    page = client.get(f"/sessions/{sid}").get_data(as_text=True)
    assert '<div id="state"' in page and "No state yet." in page
    assert "state-panel.js" in page  # the script that redraws it live


def test_the_session_page_shows_state_by_scope_escaped_with_versions_and_time_left(env):
    # Given a shared entry written twice (its value hostile), a temporary one and a private one
    client, _ = env
    sid = submit(client, "state", [step("a")])
    put_state(client, sid, "plan", {"value": "draft"})
    put_state(client, sid, "plan", {"value": {"note": HOSTILE}})
    put_state(client, sid, "flash", {"value": 1, "type": "temporary", "ttlSeconds": 90})
    put_state(client, sid, "mine", {"value": "x", "type": "private", "agentId": "coder-001"})
    # When the page is rendered
    page = client.get(f"/sessions/{sid}").get_data(as_text=True)
    # Then each scope has its table, values are compact escaped JSON, with versions and writers
    assert "No state yet." not in page
    shared = page[page.index('data-scope="shared"') : page.index('data-scope="temporary"')]
    assert 'data-key="plan"' in shared and '<td data-field="version">2</td>' in shared
    assert HOSTILE not in page
    assert "{&#34;note&#34;:&#34;&lt;script&gt;window.__xss = 1&lt;/script&gt;&#34;}" in shared
    assert '<td data-field="by">operator</td>' in shared
    temporary = page[page.index('data-scope="temporary"') : page.index('data-scope="private"')]
    assert re.search(r'data-field="left" data-expires="[0-9T:.-]+Z">1 min (29|30) s<', temporary)
    private = page[page.index('data-scope="private"') :]
    assert '<div class="state-agent" data-agent="coder-001"><h4>coder-001</h4>' in private
    assert 'data-key="mine"' in private


def test_a_long_state_value_is_cut_with_an_ellipsis_and_times_left_are_words():
    value = {"text": "x" * 500}
    assert len(compact_json(value)) == 120 and compact_json(value).endswith("…")
    assert compact_json({"a": [1, None]}) == '{"a":[1,null]}'
    assert [duration_words(s) for s in (-1, 0, 0.2, 59, 61, 3600, 90061)] == [
        "expired",
        "expired",
        "1 s",
        "59 s",
        "1 min 1 s",
        "1 h 0 min",
        "1 d 1 h",
    ]


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
    fake_redis.rpush(Keys("meowstik").broker("cap.web_research"), "waiting")
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
    assert client.get("/dashboard/static/state-panel.js").status_code == 200
    assert client.get("/dashboard/static/dashboard.css").status_code == 200


# --- agents: how each did across sessions ------------------------------------------------------


def run_steps(world, outcomes: list[bool], capability: str = "web_research") -> str:
    """One session of a step per outcome, each run to success (True) or a permanent failure
    (False) at the world's clock, 0.2 s a run; the agent that ran them."""
    from orchestrator.core.errors import PermanentStepError
    from orchestrator.core.models import OrchestrateRequest

    steps = [
        {"id": f"s{i}", "title": "s", "requiredCapabilities": [capability]}
        for i in range(len(outcomes))
    ]
    request = OrchestrateRequest.model_validate(
        {"goal": "metrics", "plan": {"steps": steps}, "failurePolicy": "continue"}
    )
    sid = world.engine.submit(request).session_id
    agent_id = ""
    for i, ok in enumerate(outcomes):
        agent_id = world.sessions.step_record(sid, f"s{i}")["agentId"]
        run = world.lifecycle.begin(sid, f"s{i}", agent_id)
        world.clock.advance(0.2)
        if ok:
            world.lifecycle.succeed(run, StepResult("ok"))
        else:
            world.lifecycle.fail(run, PermanentStepError("nope"))
    return agent_id


def test_the_agents_page_shows_the_days_success_runs_run_times_and_the_hours_trend(env):
    # Given an agent that succeeded once and failed once two hours ago, and succeeded twice now
    client, world = env
    world.clock.now_s = time.time() - 2 * 3600
    agent_id = run_steps(world, [True, False])
    world.clock.now_s = time.time()
    assert run_steps(world, [True, True]) == agent_id
    # When the agents page is rendered
    page = client.get("/agents").get_data(as_text=True)
    row = page[page.index(f'<tr data-agent="{agent_id}">') :].split("</tr>", 1)[0]
    # Then its row has the day's figures (3 of 4 succeeded) and the hour's rate, up from them
    assert f'<a href="/agents/{agent_id}">{agent_id}</a>' in row
    assert '<td class="figure" data-field="success" data-value="0.75">75%</td>' in row
    assert '<td class="figure" data-field="runs">4</td>' in row
    assert '<span data-field="p50">' in row and '<span data-field="p95">' in row
    assert '<td class="trend trend-up" data-field="trend">↑ 100% last hour</td>' in row
    # and an agent that never ran shows dashes
    idle = page[page.index('<tr data-agent="coder-001">') :].split("</tr>", 1)[0]
    assert 'data-field="success" data-value="">–</td>' in idle
    assert '<td class="trend trend-none" data-field="trend">–</td>' in idle


def test_the_agent_page_shows_each_window_failures_by_type_and_capabilities(env):
    client, world = env
    world.clock.now_s = time.time() - 2 * 3600
    agent_id = run_steps(world, [True, False])
    world.clock.now_s = time.time()
    run_steps(world, [True])
    response = client.get(f"/agents/{agent_id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)

    def cells(field: str) -> list[str]:
        row = page[page.index(f'<tr data-field="{field}">') :].split("</tr>", 1)[0]
        return re.findall(r'<td data-window="(?:1h|24h|all)">([^<]*)</td>', row)

    assert cells("started") == ["1", "3", "3"]
    assert cells("succeeded") == ["1", "2", "2"]
    assert cells("failed") == ["0", "1", "1"]
    assert cells("success_rate") == ["100%", "66.7%", "66.7%"]
    assert cells("run_p50") == ["175 ms"] * 3  # every run in (0.1, 0.25]: interpolated
    assert cells("cost") == ["–", "–", "–"]  # nothing it ran had a price
    failures = page[page.index('<tr data-error-type="PermanentStepError">') :].split("</tr>")[0]
    assert re.findall(r">(\d+)</td>", failures) == ["0", "1", "1"]
    capability = page[page.index('<tr data-capability="web_research">') :].split("</tr>")[0]
    assert '<td data-field="started">3</td>' in capability
    assert '<td data-field="success_rate">66.7%</td>' in capability


def test_an_unknown_agent_page_is_a_404_page_showing_the_id_as_text(env):
    client, _ = env
    response = client.get("/agents/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    assert response.status_code == 404 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "No agent &lt;img src=x onerror=alert(1)&gt;" in page and "<img" not in page


def test_rates_run_times_and_trends_are_written_in_short_words():
    from api.routes.dashboard import percent, run_time, trend
    from orchestrator.core.agent_metrics import AgentMetrics

    assert [percent(r) for r in (None, 0, 0.0004, 0.6, 0.6667, 0.9999, 1)] == [
        "–", "0%", "0.1%", "60%", "66.7%", "99.9%", "100%"
    ]  # fmt: skip
    assert [run_time(s) for s in (None, 0.0025, 0.35, 0.9996, 1.5, 187.2)] == [
        "–", "2.5 ms", "350 ms", "1 s", "1.5 s", "3 min 8 s"
    ]  # fmt: skip

    def rate(success_rate):
        return AgentMetrics(agent_id="a", window="1h", success_rate=success_rate)

    assert trend(rate(0.98), rate(0.9)) == ("up", "↑ 98% last hour")
    assert trend(rate(0.6), rate(0.9)) == ("down", "↓ 60% last hour")
    assert trend(rate(0.8), rate(0.8)) == ("same", "→ 80% last hour")
    assert trend(rate(None), rate(0.8)) == ("none", "–")
