"""What a session spent, on its dashboard page (issue 20), in a real headless Chromium against a
real cluster: the Looper (a 4-turn durable tool loop) runs against the OpenAI wire fake, whose
model has a price in the cluster's MEOWSTIK_PRICES_FILE and markup in its name; an echo step
follows it. The session's cost line (the exact dollars the API counted, calls, tokens, CPU), each
step's cost, and the breakdown by agent and by model follow the session without a reload, and
say so when a cost is unknown; names are shown as text."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
import redis

from cli.rendering import cost_line
from tests.integration import test_dashboard_browser as dashboard_browser
from tests.integration.test_dashboard_transcript import respond, turns
from tests.support.cluster import model_cluster, wait_for
from tests.support.openai_wire import OpenAIWire
from tests.support.plans import step

pytestmark = pytest.mark.integration

browser = dashboard_browser.browser  # the same Chromium fixtures (skipped/required alike)
page = dashboard_browser.page

AGENTS = "looper-001,echo-001"
MODEL = 'wire-<b>model</b> & "co"'  # the model every call names: markup, shown as text
# USD per million tokens; one call of the fake is 31 prompt + 12 completion tokens
PRICES = {"asOf": "2026-12-01", "models": {MODEL: {"input": 0.15, "output": 0.6}}}
CALL_USD = Decimal(31) * Decimal("0.15") / 10**6 + Decimal(12) * Decimal("0.6") / 10**6
HOSTILE = '<img src=x onerror="window.__pwned=1;alert(1)"><script>window.__pwned=2</script>'
LINE = "#cost"
STEP_COST = '#steps tr[data-step="{}"] td[data-field="cost"]'


@pytest.fixture(scope="module")
def priced_cluster(redis_server, tmp_path_factory):
    """A worker hosting the Looper and the echo agent, the model priced, and the API."""
    prices = tmp_path_factory.mktemp("prices") / "prices.yaml"
    prices.write_text(json.dumps(PRICES))  # JSON is YAML
    with OpenAIWire(responder=respond) as wire:
        logs = tmp_path_factory.mktemp("cost-cluster-logs")
        with model_cluster(
            redis_server.url, logs, wire.url, AGENTS, model=MODEL, prices_file=prices
        ) as running:
            yield running


def plan(gate: str) -> dict:
    """L: the Looper, 4 model calls (its second tool waits for the gate); E: echo, no model."""
    loop = {"id": "L", "title": "Loop", "requiredCapabilities": ["tool_loop"]}
    return {"steps": [{**loop, "parameters": {"gate": gate}}, step("E", "echo_work", "L")]}


def wait_text(page, selector: str, expected: str) -> None:
    page.wait_for_function(
        "([selector, expected]) => document.querySelector(selector)?.textContent === expected",
        arg=[selector, expected],
    )


def test_the_session_and_step_costs_follow_the_session_and_equal_the_apis(priced_cluster, page):
    assert len(turns("g")) + 1 == 4  # the Looper's model calls: one per turn, then its answer
    # Given the Looper's step L, blocked in its second tool call after two model calls
    gate = uuid.uuid4().hex
    sid = priced_cluster.submit({"goal": "what it cost", "plan": plan(gate)})["sessionId"]
    client = redis.Redis.from_url(priced_cluster.redis_url)
    try:
        wait_for(lambda: client.lindex(f"test:pids:{gate}", 0), 30, what="the gated tool")
        running = priced_cluster.session(sid)
        assert running["cost"]["modelCalls"] == 2 and running["steps"]["L"]["status"] == "running"
        # When its page is open, it shows what the calls so far cost, the step's too
        page.goto(f"{priced_cluster.api_url}/sessions/{sid}")
        page.evaluate("window.__samePage = true")  # gone if the page reloads
        assert page.text_content(LINE) == cost_line(running["cost"])
        assert page.text_content(LINE).startswith(f"${running['cost']['usd']} · 2 model calls · ")
        assert Decimal(running["cost"]["usd"]) == 2 * CALL_USD
        assert page.text_content(f'{STEP_COST.format("L")} [data-field="usd"]') == (
            f"${running['steps']['L']['cost']['usd']}"
        )
        assert page.text_content(STEP_COST.format("E")) == ""  # not run yet
    finally:
        client.lpush(f"test:gate:{gate}", "open")

    # Then, once it completes, the page follows without a reload to the final figures
    page.wait_for_function("() => document.getElementById('status').textContent === 'completed'")
    done = priced_cluster.session(sid)
    cost = done["cost"]
    assert Decimal(cost["usd"]) == 4 * CALL_USD == Decimal("0.0000474")
    expected = f"${cost['usd']} · 4 model calls · 172 tokens · CPU {cost['cpuSeconds']:.2f} s"
    wait_text(page, LINE, expected)
    assert expected == cost_line(cost)  # the CLI's wording (meowstik status)
    assert page.evaluate("window.__samePage") is True
    # each step's cost, CPU seconds in its tooltip; the echo step made no model call
    looper = done["steps"]["L"]["cost"]
    wait_text(page, f'{STEP_COST.format("L")} [data-field="usd"]', f"${looper['usd']}")
    assert looper["usd"] == cost["usd"]
    title = page.get_attribute(STEP_COST.format("L"), "title")
    assert f"CPU {looper['cpuSeconds']:.2f} s" in title
    assert "4 model calls · 172 tokens (124 prompt + 48 completion)" in title
    wait_text(page, f'{STEP_COST.format("E")} [data-field="usd"]', "$0")
    assert "0 model calls" in page.get_attribute(STEP_COST.format("E"), "title")

    # And drawn again, the page shows the same; the breakdown lists agents and the model by name
    page.reload()
    assert page.text_content(LINE) == expected
    breakdown = "#cost-breakdown"
    assert page.evaluate(f"() => document.querySelector('{breakdown}').open") is False
    page.click(f"{breakdown} > summary")
    agents = f'{breakdown} table[data-by="agent"] tbody tr'
    assert page.eval_on_selector_all(agents, "rows => rows.map((r) => r.dataset.agent)") == [
        "echo-001",
        "looper-001",
    ]
    assert page.text_content(f'{agents}[data-agent="looper-001"] [data-field="usd"]') == (
        f"${cost['byAgent']['looper-001']['usd']}"
    )
    model_row = f'{breakdown} table[data-by="model"] tbody tr'
    assert page.locator(model_row).count() == 1
    assert page.text_content(f'{model_row} [data-field="name"]') == MODEL
    assert page.text_content(f'{model_row} [data-field="usd"]') == f"${cost['usd']}"
    assert page.locator(f"{breakdown} b").count() == 0  # the model's markup is text
    assert MODEL in page.inner_text(breakdown)
    page.locator("#steps").scroll_into_view_if_needed()
    dashboard_browser.shoot(page, "session-cost")


def test_an_unknown_cost_names_the_models_without_a_price_as_text(priced_cluster, page):
    """The session's snapshot as it is when a model has no price (the API's answer crafted):
    usd absent, the model named in the cost line and the breakdown, all of it as text."""
    gate = uuid.uuid4().hex
    redis.Redis.from_url(priced_cluster.redis_url).lpush(f"test:gate:{gate}", "open")
    sid = priced_cluster.submit({"goal": "no price", "plan": plan(gate)})["sessionId"]
    real = priced_cluster.wait_session(sid)
    assert real["status"] == "completed"
    crafted = json.loads(json.dumps(real))
    unpriced = f"local {HOSTILE}"
    cost = crafted["cost"]
    del cost["usd"]
    cost["uncostedCalls"] = cost["modelCalls"]
    cost["byModel"] = {unpriced: {**cost["byModel"].pop(MODEL), "uncostedCalls": 4}}
    del cost["byModel"][unpriced]["usd"]
    del crafted["steps"]["L"]["cost"]["usd"]
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.route(
        f"**/api/orchestrator/sessions/{sid}",
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps(crafted)
        ),
    )
    # the page is drawn from the real figures, then the next snapshot refresh redraws it
    page.goto(f"{priced_cluster.api_url}/sessions/{sid}")
    assert page.text_content(LINE).startswith(f"${real['cost']['usd']} · ")
    expected = (
        f"cost unknown (no price for {unpriced}) · 4 model calls · 172 tokens"
        f" · CPU {cost['cpuSeconds']:.2f} s"
    )
    wait_text(page, LINE, expected)
    assert expected == cost_line(cost)
    assert page.text_content(f'{STEP_COST.format("L")} [data-field="usd"]') == "unknown"
    assert "no price for its model" in page.get_attribute(STEP_COST.format("L"), "title")
    assert page.text_content(f'{STEP_COST.format("E")} [data-field="usd"]') == "$0"
    page.click("#cost-breakdown > summary")
    model_row = '#cost-breakdown table[data-by="model"] tbody tr'
    assert page.text_content(f'{model_row} [data-field="name"]') == unpriced
    assert page.text_content(f'{model_row} [data-field="usd"]') == "cost unknown"
    # nothing was parsed as markup, nothing ran
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    assert dialogs == []
