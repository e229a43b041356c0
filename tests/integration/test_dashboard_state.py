"""The session page's State panel in a real headless Chromium against a real cluster: what an
agent writes, an operator's change to it, private entries by agent and temporary entries with
their time left all appear without a reload (the page follows ``state.updated`` events), and a
temporary entry leaves the panel once it expires.

With MEOWSTIK_SCREENSHOT_DIR set, the panel is also saved there as state-panel.png for a person
to look at."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest
import requests

from tests.integration import test_dashboard_browser as dashboard_browser
from tests.support.plans import step

pytestmark = pytest.mark.integration

browser = dashboard_browser.browser  # the same Chromium fixtures (skipped/required alike)
page = dashboard_browser.page


def put_state(cluster, sid: str, key: str, body: dict) -> None:
    response = requests.put(
        f"{cluster.api_url}/api/orchestrator/sessions/{sid}/state/{key}", json=body, timeout=10
    )
    assert response.status_code == 200, response.text


def save_for_review(page) -> None:
    directory = os.environ.get("MEOWSTIK_SCREENSHOT_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.locator("#state").screenshot(path=str(Path(directory) / "state-panel.png"))


def test_the_state_panel_shows_an_agents_write_and_its_changes_without_reload(cluster, page):
    from playwright.sync_api import expect  # present: the page fixture required it

    # Given a session held by a gate before two agent steps that write state, and by another after
    before, after = uuid.uuid4().hex, uuid.uuid4().hex
    draft = {"title": "first draft", "words": 120}
    steps = [
        step("G1", "gated_work", gate=before),
        step("W", "state_work", "G1", mode="write_shared", key="draft", value=draft),
        step("P", "state_work", "G1", mode="write_private", key="notes", value="mine"),
        step("G2", "gated_work", "W", "P", gate=after),
    ]
    sid = cluster.submit({"goal": "state panel", "plan": {"steps": steps}})["sessionId"]
    try:
        # When its page is open while nothing is written yet
        page.goto(f"{cluster.api_url}/sessions/{sid}")
        page.wait_for_selector('g.node.state-running[data-step="G1"]')
        expect(page.locator("#state")).to_have_text("No state yet.")
        page.evaluate("window.__samePage = true")  # gone if the page reloads

        # and the first gate opens, so the agent writes
        dashboard_browser.open_gate(cluster, before)

        # Then the agent's value shows, with its version and writer
        shared = page.locator('#state [data-scope="shared"] tr[data-key="draft"]')
        expect(shared.locator('[data-field="value"]')).to_have_text(
            '{"title":"first draft","words":120}'
        )
        expect(shared.locator('[data-field="version"]')).to_have_text("1")
        expect(shared.locator('[data-field="by"]')).to_have_text("agent:stateful-001")
        expect(shared.locator('[data-field="at"]')).to_have_text(re.compile(r"^\d{4}-.+Z$"))
        private = page.locator('#state .state-agent[data-agent="stateful-001"]')
        expect(private.locator('tr[data-key="notes"] [data-field="value"]')).to_have_text('"mine"')
        page.wait_for_selector('g.node.state-running[data-step="G2"]')

        # When an operator changes the value
        put_state(cluster, sid, "draft", {"value": {"title": "second draft", "words": 240}})
        # Then the change shows, with the next version
        expect(shared.locator('[data-field="value"]')).to_have_text(
            '{"title":"second draft","words":240}'
        )
        expect(shared.locator('[data-field="version"]')).to_have_text("2")
        expect(shared.locator('[data-field="by"]')).to_have_text("operator")

        # When temporary entries are written, one for ten minutes and one for five seconds
        put_state(cluster, sid, "review", {"value": "held", "type": "temporary", "ttlSeconds": 600})
        put_state(cluster, sid, "flash", {"value": "soon", "type": "temporary", "ttlSeconds": 5})
        temporary = page.locator('#state [data-scope="temporary"]')
        review_left = temporary.locator('tr[data-key="review"] [data-field="left"]')
        flash = temporary.locator('tr[data-key="flash"]')
        # Then each shows its time left, counting down in the page
        expect(review_left).to_have_text(re.compile(r"^(9 min \d{1,2} s|10 min 0 s)$"))
        expect(flash.locator('[data-field="left"]')).to_have_text(re.compile(r"^[1-5] s$"))
        expect(review_left).not_to_have_text(review_left.text_content() or "")
        save_for_review(page)
        dashboard_browser.shoot(page, "session-state")
        # and the short one leaves the panel once it has expired
        expect(flash).to_have_count(0)
        expect(temporary.locator('tr[data-key="review"]')).to_have_count(1)
        assert page.evaluate("window.__samePage") is True
    finally:
        dashboard_browser.open_gate(cluster, before)
        dashboard_browser.open_gate(cluster, after)
    assert cluster.wait_session(sid)["status"] == "completed"
