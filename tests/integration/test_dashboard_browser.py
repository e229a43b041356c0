"""The dashboard in a real headless Chromium (Debian's package, driven by Playwright) against a
real cluster: the graph updates live to completion, cancel and operator input work from the page,
and what agents and users wrote renders as text. Screenshots of every page are saved under
test-artifacts/screenshots/."""

import os
import shutil
import uuid

import pytest
import redis

from tests.conftest import require
from tests.support.cluster import REPO_ROOT
from tests.support.plans import step

pytestmark = pytest.mark.integration

SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TIMEOUT_MS = 30_000


def chromium_path() -> str | None:
    for candidate in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        found = shutil.which(candidate) or (candidate if os.path.exists(candidate) else None)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    require(executable is not None, "Chromium (apt-get install chromium; .ci/run installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright (pip install playwright)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    yield opened
    context.close()


def shoot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def node_states(page) -> dict[str, str]:
    return page.eval_on_selector_all(
        "g.node",
        "nodes => Object.fromEntries(nodes.map(n => [n.dataset.step,"
        " n.getAttribute('class').replace('node state-', '')]))",
    )


def open_gate(cluster, gate: str) -> None:
    redis.Redis.from_url(cluster.redis_url).lpush(f"test:gate:{gate}", "open")


def test_a_session_graph_updates_live_until_every_node_is_completed(cluster, page):
    # Given a diamond whose B is held by a gate
    gate = uuid.uuid4().hex
    steps = [
        step("A", "echo_work"),
        step("B", "gated_work", "A", gate=gate),
        step("C", "echo_work", "A"),
        step("D", "echo_work", "B", "C"),
    ]
    sid = cluster.submit({"goal": "live graph", "plan": {"steps": steps}})["sessionId"]
    try:
        # When its page is open while B runs
        page.goto(f"{cluster.api_url}/sessions/{sid}")
        page.wait_for_selector('g.node.state-running[data-step="B"]')
        assert node_states(page)["D"] == "pending"
        shoot(page, "session-running")
    finally:
        open_gate(cluster, gate)
    # Then, without a reload, every node turns completed and the status says so
    page.wait_for_function(
        "() => [...document.querySelectorAll('g.node')].every("
        "n => n.getAttribute('class') === 'node state-completed')"
    )
    page.wait_for_function("() => document.getElementById('status').textContent === 'completed'")
    assert set(node_states(page)) == {"A", "B", "C", "D"}
    assert page.text_content("#progress") == "4/4 completed"
    page.wait_for_selector("#logs tbody tr")
    assert "Session finished" in page.text_content("#logs")
    shoot(page, "session-completed")


def test_the_list_agents_queues_and_workers_pages_show_the_cluster(cluster, page):
    sid = cluster.submit({"goal": "listed", "plan": {"steps": [step("L", "echo_work")]}})[
        "sessionId"
    ]
    cluster.wait_session(sid)
    page.goto(cluster.api_url + "/")
    assert page.is_visible(f'tr[data-session="{sid}"]')
    shoot(page, "sessions")
    page.goto(cluster.api_url + "/agents")
    assert "echo-001" in page.text_content("#agents")
    shoot(page, "agents")
    page.goto(cluster.api_url + "/queues")
    assert page.is_visible('tr[data-queue="cap.echo_work"]')
    shoot(page, "queues")
    page.goto(cluster.api_url + "/workers")
    assert "worker@" in page.text_content("#workers")
    shoot(page, "workers")


def test_cancel_from_the_page_stops_a_running_session(cluster, page):
    gate = uuid.uuid4().hex
    steps = [step("G", "gated_work", gate=gate), step("After", "echo_work", "G")]
    sid = cluster.submit({"goal": "cancel me", "plan": {"steps": steps}})["sessionId"]
    try:
        page.goto(f"{cluster.api_url}/sessions/{sid}")
        page.wait_for_selector('g.node.state-running[data-step="G"]')
        page.click("#cancel")
        page.wait_for_function(
            "() => document.getElementById('status').textContent === 'cancelled'"
        )
        snapshot = cluster.session(sid)
        assert snapshot["status"] == "cancelled"
        assert {s["status"] for s in snapshot["steps"].values()} == {"cancelled"}
        assert page.is_disabled("#cancel")
        shoot(page, "session-cancelled")
    finally:
        open_gate(cluster, gate)


def test_an_operator_answer_given_in_the_page_resumes_the_session(cluster, page):
    schema = {
        "type": "object",
        "required": ["approve"],
        "properties": {"approve": {"type": "boolean"}},
    }
    steps = [step("Ask", "ask_work", question="Ship <it>?", schema=schema)]
    sid = cluster.submit({"goal": "ask", "plan": {"steps": steps}})["sessionId"]
    page.goto(f"{cluster.api_url}/sessions/{sid}")
    form = page.wait_for_selector('form.input-form[data-step="Ask"]')
    assert form.query_selector(".question").text_content() == "Ship <it>?"
    shoot(page, "session-waiting-for-input")
    # a value that is not JSON, then one that breaks the schema, are refused with reasons
    page.fill('form.input-form[data-step="Ask"] textarea', "{not json")
    page.click('form.input-form[data-step="Ask"] button')
    page.wait_for_selector("text=Not valid JSON")
    page.fill('form.input-form[data-step="Ask"] textarea', '{"approve": "yes"}')
    page.click('form.input-form[data-step="Ask"] button')
    page.wait_for_selector("text=does not match the schema")
    # and a valid answer resumes the step, which completes with it
    page.fill('form.input-form[data-step="Ask"] textarea', '{"approve": true}')
    page.click('form.input-form[data-step="Ask"] button')
    page.wait_for_function("() => document.getElementById('status').textContent === 'completed'")
    done = cluster.session(sid)
    assert done["results"][f"{sid}.Ask"]["answer"] == {"approve": True}
    assert '"approve": true' in page.text_content('#steps tr[data-step="Ask"] .output')


def test_script_in_a_step_output_or_a_goal_renders_as_text(cluster, page):
    hostile = "<script>window.__xss = 1</script><img src=x onerror='window.__xss = 2'>"
    body = {
        "goal": f"escape {hostile}",
        "initialContext": {"note": hostile},
        "plan": {"steps": [step("E", "echo_work")]},
    }
    sid = cluster.wait_session(cluster.submit(body)["sessionId"])["sessionId"]
    page.goto(f"{cluster.api_url}/sessions/{sid}")
    output = page.text_content('#steps tr[data-step="E"] .output')
    assert hostile in output  # the echo agent's output, shown as the text it is
    assert hostile in page.text_content("p.goal")
    # let the live refresh rewrite the output, then check nothing ran
    page.wait_for_selector("#logs tbody tr")
    assert page.evaluate("window.__xss") is None
    page.goto(cluster.api_url + "/")
    assert hostile in page.text_content(f'tr[data-session="{sid}"] .goal')
    assert page.evaluate("window.__xss") is None
    shoot(page, "escaped-output")
