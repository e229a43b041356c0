"""A running step's text grows on the session page as it streams (step.delta events), in a real
headless Chromium against a real cluster: chunks are appended in place without a reload, a
chunk already seen is ignored, markup shows as text, and once the step completes the snapshot
refresh replaces the live text with the step's result."""

from __future__ import annotations

import uuid

import pytest
import redis

from orchestrator.store.deltas import DeltaStream
from orchestrator.store.keys import Keys
from tests.integration import test_dashboard_browser as dashboard_browser
from tests.integration.test_delta_events import running
from tests.support.plans import step

pytestmark = pytest.mark.integration

browser = dashboard_browser.browser  # the same Chromium fixtures (skipped/required alike)
page = dashboard_browser.page

LIVE = '#steps tr.live-row[data-live-step="G"]'
LIVE_TEXT = f"{LIVE} pre.live-text"


def wait_for_live_text(page, expected: str) -> None:
    page.wait_for_function(
        "([selector, expected]) => {"
        " const box = document.querySelector(selector);"
        " return box !== null && box.textContent === expected; }",
        arg=[LIVE_TEXT, expected],
    )


def test_a_streaming_steps_text_grows_in_the_page_until_its_result_replaces_it(cluster, page):
    client = redis.Redis.from_url(cluster.redis_url)
    gate = uuid.uuid4().hex
    plan = {"steps": [step("G", "gated_work", gate=gate)]}
    sid = cluster.submit({"goal": "live text", "plan": plan})["sessionId"]
    agent = running(cluster, sid, "G")["agentId"]
    deltas = DeltaStream(client, Keys())
    # one entry per fragment: the page sees every step of the growth
    writer = deltas.writer(sid, "G", agent, clock=lambda: 0.0, flush_chars=1)
    fragments = ["Thinking", " about", " <b>bold</b> & <script>window.__live=1</script>", " done."]
    try:
        # Given the session page, open while G runs
        page.goto(f"{cluster.api_url}/sessions/{sid}")
        page.wait_for_selector('g.node.state-running[data-step="G"]')
        page.evaluate("window.__samePage = true")  # gone if the page reloads
        # When G streams its text, the box under its row shows it growing, chunk by chunk
        shown = ""
        for index, fragment in enumerate(fragments[:3]):
            writer.on_delta(fragment)
            shown += fragment
            wait_for_live_text(page, shown)
            assert page.get_attribute(LIVE_TEXT, "data-seq") == str(index + 1)
            if index == 0:  # the box sits right under the step's row
                assert (
                    page.evaluate(
                        "() => document.querySelector('#steps tr[data-step=\"G\"]')"
                        ".nextElementSibling.dataset.liveStep"
                    )
                    == "G"
                )
        dashboard_browser.shoot(page, "session-live-text")
        # and a chunk whose seq was already seen changes nothing
        deltas.append(
            sid, {"stepId": "G", "agentId": agent, "text": "DUPLICATE", "seq": "2", "done": "0"}
        )
        writer.on_delta(fragments[3])
        writer.close()
        wait_for_live_text(page, "".join(fragments))
        page.wait_for_selector(f"{LIVE}.done")
        # markup in the text is shown as text: nothing was parsed or run
        assert page.locator(f"{LIVE_TEXT} b, {LIVE_TEXT} script").count() == 0
        assert page.evaluate("() => window.__live") is None
    finally:
        client.lpush(f"test:gate:{gate}", "open")
    # When the step completes, the refresh replaces the live text with the step's result
    page.wait_for_function("() => document.getElementById('status').textContent === 'completed'")
    page.wait_for_function("() => document.querySelector('#steps tr.live-row') === null")
    assert f'"gate": "{gate}"' in page.text_content('#steps tr[data-step="G"] .output')
    assert page.evaluate("window.__samePage") is True
