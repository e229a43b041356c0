"""HTML and JavaScript written by users and agents is shown as text on every dashboard page, in a
real headless Chromium against a real cluster: a goal, a user id, step titles, descriptions and
parameters, a step's output (the echo agent returns the initial context it was given), the
log, and an agent registered with markup in its name (on the agents page and its own page).
Nothing runs (``window.__pwned`` stays undefined, no dialog opens) and the literal text is
visible."""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import pytest
import requests

from tests.integration import test_dashboard_browser as dashboard_browser
from tests.support.plans import step

pytestmark = pytest.mark.integration

browser = dashboard_browser.browser  # the same Chromium fixtures (skipped/required alike)
page = dashboard_browser.page

SCRIPT = "<script>window.__pwned=1;alert(1)</script>"
IMG = '<img src=x onerror="window.__pwned=1;alert(2)">'
SVG = '"><svg onload="window.__pwned=1;alert(3)">'
PAYLOADS = (SCRIPT, IMG, SVG)
ALL = " ".join(PAYLOADS)


def assert_inert(page, dialogs: list[str], *shown: str) -> None:
    """Nothing ran on the page, and each of ``shown`` is visible as literal text."""
    assert page.evaluate("() => window.__pwned") is None
    assert dialogs == []
    assert page.locator("script:not([src])").count() == 0  # no inline script was injected
    text = page.inner_text("body")
    for literal in shown:
        assert literal in text, f"{literal!r} not shown as text"


@pytest.fixture
def watched(page):
    dialogs: list[str] = []

    def dismiss(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    return page, dialogs


@pytest.fixture(scope="module")
def hostile_session(cluster) -> str:
    steps = [
        {**step("A", "echo_work"), "title": ALL, "description": f"described {ALL}"},
        {**step("B", "echo_work", "A", note=ALL), "title": f"B {SCRIPT}"},
    ]
    body = {
        "goal": f"Goal {ALL}",
        "userId": f"u{SVG}",
        "initialContext": {"html": ALL},
        "plan": {"steps": steps},
    }
    sid = cluster.submit(body)["sessionId"]
    done = cluster.wait_session(sid)
    assert done["status"] == "completed", done
    patch = requests.patch(
        f"{cluster.api_url}/api/orchestrator/sessions/{sid}/context",
        json={"late": ALL},
        timeout=10,
    )
    assert patch.status_code == 409  # finished: the context is closed, nothing more to show
    return sid


@pytest.fixture(scope="module")
def hostile_agent(cluster) -> str:
    agent_id = f"xss-{uuid.uuid4().hex[:8]}"
    response = requests.post(
        f"{cluster.api_url}/api/orchestrator/agents",
        json={
            "id": agent_id,
            "name": f"Agent {IMG}"[:200],
            "description": f"Desc {ALL}",
            "type": "remote",
            "capabilities": [{"name": "echo_work", "description": ALL}],
            "endpoint": "http://127.0.0.1:9/agent",
            "metadata": {"html": ALL},
        },
        timeout=10,
    )
    assert response.status_code == 201, response.text
    yield agent_id
    requests.delete(f"{cluster.api_url}/api/orchestrator/agents/{agent_id}", timeout=10)


def test_the_session_page_shows_goal_titles_definitions_outputs_and_logs_as_text(
    cluster, watched, hostile_session
):
    page, dialogs = watched
    page.goto(f"{cluster.api_url}/sessions/{hostile_session}")
    page.wait_for_selector("#logs tbody tr")
    page.wait_for_function("() => document.getElementById('status').textContent === 'completed'")
    assert_inert(page, dialogs, f"Goal {ALL}", ALL, f"B {SCRIPT}")
    definition = page.text_content('tr[data-step="A"] details pre')  # collapsed: not inner text
    assert json.dumps(f"described {ALL}") in definition
    output = page.inner_text('tr[data-step="A"] [data-field="output"]')
    assert "html" in output and SCRIPT.replace('"', '\\"') in output  # the echoed context
    assert page.locator("g.node").count() == 2  # the graph drew the nodes, nothing else
    assert page.text_content('g.node[data-step="A"] title') == ALL


def test_the_sessions_list_and_its_filter_show_goals_and_user_ids_as_text(
    cluster, watched, hostile_session
):
    page, dialogs = watched
    page.goto(cluster.api_url + "/")
    page.wait_for_selector(f'tr[data-session="{hostile_session}"]')
    assert_inert(page, dialogs, f"Goal {ALL}", f"u{SVG}")
    page.goto(f"{cluster.api_url}/?userId={quote('u' + SVG)}")
    page.wait_for_selector(f'tr[data-session="{hostile_session}"]')
    assert_inert(page, dialogs, f"Goal {ALL}")
    assert page.input_value('input[name="userId"]') == f"u{SVG}"


def test_the_agents_page_shows_an_agent_named_with_markup_as_text(cluster, watched, hostile_agent):
    page, dialogs = watched
    page.goto(cluster.api_url + "/agents")
    page.wait_for_selector(f'tr[data-agent="{hostile_agent}"]')
    assert_inert(page, dialogs, f"Agent {IMG}", hostile_agent)
    for path in ("/queues", "/workers"):
        page.goto(cluster.api_url + path)
        assert_inert(page, dialogs)


def test_an_agents_own_page_shows_its_markup_name_and_an_unknown_id_as_text(
    cluster, watched, hostile_agent
):
    page, dialogs = watched
    page.goto(cluster.api_url + "/agents")
    page.click(f'tr[data-agent="{hostile_agent}"] a')  # the link to its page
    page.wait_for_selector("#agent-metrics")
    assert page.text_content("#agent-name") == f"Agent {IMG}"
    assert_inert(page, dialogs, f"Agent {IMG}", hostile_agent)
    response = page.goto(f"{cluster.api_url}/agents/{quote(IMG, safe='')}")
    assert response.status == 404
    assert_inert(page, dialogs, f"No agent {IMG}")


def test_a_missing_session_page_shows_the_id_from_the_url_as_text(cluster, watched):
    page, dialogs = watched
    response = page.goto(f"{cluster.api_url}/sessions/{quote(IMG, safe='')}")
    assert response.status == 404
    assert_inert(page, dialogs, IMG)


def test_state_values_with_markup_show_as_text_in_the_state_panel_and_its_live_redraw(
    cluster, watched
):
    page, dialogs = watched
    gate = uuid.uuid4().hex
    plan = {"steps": [step("G", "gated_work", gate=gate)]}
    sid = cluster.submit({"goal": "hostile state", "plan": plan})["sessionId"]
    url = f"{cluster.api_url}/api/orchestrator/sessions/{sid}/state"
    try:
        # drawn by the server on page load
        assert requests.put(f"{url}/html", json={"value": SCRIPT}, timeout=10).status_code == 200
        page.goto(f"{cluster.api_url}/sessions/{sid}")
        value = page.locator('#state tr[data-key="html"] [data-field="value"]')
        assert value.text_content() == json.dumps(SCRIPT)
        assert_inert(page, dialogs, SCRIPT)
        # and redrawn by the script when it changes, in every scope
        hostile = {"img": IMG, "svg": SVG, "all": ALL}
        writes = (
            ("html", {"value": hostile}),
            ("t", {"value": ALL, "type": "temporary", "ttlSeconds": 600}),
            ("p", {"value": ALL, "type": "private", "agentId": "gate-001"}),
        )
        for key, body in writes:
            assert requests.put(f"{url}/{key}", json=body, timeout=10).status_code == 200
        page.wait_for_selector('#state .state-agent[data-agent="gate-001"] tr[data-key="p"]')
        page.wait_for_selector('#state [data-scope="temporary"] tr[data-key="t"]')
        page.wait_for_function(
            "() => document.querySelector("
            "'#state tr[data-key=\"html\"] [data-field=\"version\"]').textContent === '2'"
        )
        compact = json.dumps(hostile, separators=(",", ":"))
        assert value.text_content() == compact[:119] + "…"  # cut, as text
        assert value.locator("code").get_attribute("title") == compact  # whole, as an attribute
        assert_inert(page, dialogs, json.dumps(ALL)[:119])
        assert page.locator("#state img, #state svg, #state script").count() == 0
    finally:
        dashboard_browser.open_gate(cluster, gate)
