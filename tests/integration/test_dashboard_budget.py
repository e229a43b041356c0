"""A session's budget on its dashboard page, in a real headless Chromium against a real cluster:
the Chatter (one model call per turn, against the OpenAI wire fake, its model priced in the
cluster's MEOWSTIK_PRICES_FILE) runs under a $0.00003 budget, so its third call would cross it and
the session pauses. The page shows the budget next to the cost line and one budget form for every
parked step; raising the budget there lets the session complete, a raise not above what was spent
shows the API's refusal in the form, and Stop fails the session with BudgetExceeded, all without a
reload. The costs page then shows what the Chatter spent, as GET /api/orchestrator/costs does."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests

from tests.integration import test_dashboard_browser as dashboard_browser
from tests.support.cluster import model_cluster, wait_for
from tests.support.openai_wire import OpenAIWire, WireReply, WireRequest

pytestmark = pytest.mark.integration

browser = dashboard_browser.browser  # the same Chromium fixtures (skipped/required alike)
page = dashboard_browser.page

AGENT = "chatter-001"
MODEL = "wire-model"
# USD per million tokens; one call of the fake is 31 prompt + 12 completion tokens
PRICES = {"asOf": "2026-12-01", "models": {MODEL: {"input": 0.15, "output": 0.6}}}
CALL_USD = Decimal(31) * Decimal("0.15") / 10**6 + Decimal(12) * Decimal("0.6") / 10**6
TWO_CALLS, FOUR_CALLS = "0.0000237", "0.0000474"  # 2 and 4 x $0.00001185
BUDGET = {"maxCostUsd": 0.00003}  # two calls fit, a third ($0.00003555) would cross it
SCREENSHOT = "/tmp/dashboard-budget.png"
FORM = "form.budget-form"
LINE = "#cost"
SPENT: list[str] = []  # the sessions this module ran (the cluster's Redis starts empty)


def respond(request: WireRequest) -> WireReply:
    assert request.body["messages"][0]["content"] == "You are the Chatter."
    return WireReply(content="ok")


@pytest.fixture(scope="module")
def chat_cluster(redis_server, tmp_path_factory):
    """A worker hosting the Chatter, its model priced, and the API."""
    prices = tmp_path_factory.mktemp("prices") / "prices.yaml"
    prices.write_text(json.dumps(PRICES))  # JSON is YAML
    with OpenAIWire(responder=respond) as wire:
        logs = tmp_path_factory.mktemp("budget-cluster-logs")
        with model_cluster(
            redis_server.url, logs, wire.url, AGENT, model=MODEL, prices_file=prices
        ) as running:
            yield running


def chat(step_id: str) -> dict:
    return {
        "id": step_id,
        "title": "Chat",
        "requiredCapabilities": ["chat"],
        "parameters": {"calls": 4},
    }


def submit(cluster, *step_ids: str) -> str:
    body = {"goal": "budgeted", "plan": {"steps": [chat(s) for s in step_ids]}, "budget": BUDGET}
    sid = cluster.submit(body)["sessionId"]
    SPENT.append(sid)
    return sid


def watch_errors(page) -> list[str]:
    """Script errors and dialogs of the page: none is expected."""
    seen: list[str] = []
    page.on("pageerror", lambda error: seen.append(f"pageerror: {error}"))
    page.on("dialog", lambda dialog: (seen.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    return seen


def wait_prefix(page, selector: str, prefix: str) -> None:
    page.wait_for_function(
        "([selector, prefix]) => (document.querySelector(selector)?.textContent || '')"
        ".startsWith(prefix)",
        arg=[selector, prefix],
    )


def wait_status(page, status: str) -> None:
    page.wait_for_function(
        "(status) => document.getElementById('status').textContent === status", arg=status
    )


def wait_parked(cluster, sid: str) -> None:
    """Until the API says every step of the session is parked on its budget."""
    wait_for(
        lambda: all(
            step["status"] == "waiting_for_input" for step in cluster.session(sid)["steps"].values()
        ),
        what="every step parked on the budget",
    )


def open_paused(cluster, page, sid: str, parked: str, *, after_pause: bool = False) -> dict:
    """The session's page, once it shows the budget form for ``parked`` and what was spent.
    ``after_pause``: opened only once the API says every one of them is parked, so the form
    is the one the server drew (dashboard.js binds it) rather than one the script drew."""
    if after_pause:
        wait_parked(cluster, sid)
    drawn = page.goto(f"{cluster.api_url}/sessions/{sid}")
    if after_pause:
        assert drawn.text().count('<form class="budget-form"') == 1
    page.evaluate("window.__samePage = true")  # gone if the page reloads
    page.wait_for_function(
        "([form, parked]) => document.querySelector(`${form} .parked`)?.textContent === parked",
        arg=[FORM, parked],
    )
    wait_prefix(page, LINE, f"${TWO_CALLS} · 2 model calls · 86 tokens · ")
    paused = cluster.session(sid)
    assert paused["status"] == "waiting_for_input" and paused["budget"]["paused"] is True
    assert paused["cost"]["usd"] == paused["budget"]["spentUsd"] == TWO_CALLS
    assert Decimal(TWO_CALLS) == 2 * CALL_USD
    return paused


def test_raising_the_budget_from_the_page_lets_the_session_complete(chat_cluster, page):
    errors = watch_errors(page)
    # Given a session whose Chatter makes 4 calls under a budget that holds 2
    sid = submit(chat_cluster, "C")
    # When its page is open, it shows the pause: the budget line and one budget form
    paused = open_paused(chat_cluster, page, sid, "C")
    assert page.locator(FORM).count() == 1 and page.locator("form.input-form").count() == 0
    question = page.text_content(f"{FORM} .question")
    assert question == paused["steps"]["C"]["inputRequest"]["question"]
    assert question.startswith(f"Budget $0.00003 reached after ${TWO_CALLS} spent.")
    assert page.text_content("#budget") == (
        f"Budget $0.00003 · spent ${TWO_CALLS} · paused: waiting for a decision"
    )
    assert page.is_visible("#budget")
    amount = page.locator(f"{FORM} input[name=raiseTo]")
    assert amount.input_value() == "0.00006"  # twice the budget, offered
    assert amount.get_attribute("step") == "any" and amount.get_attribute("min") == "0"
    assert page.text_content(f"{FORM} button.raise") == "Raise budget"
    assert page.text_content(f"{FORM} button.stop") == "Stop session"
    page.screenshot(path=SCREENSHOT, full_page=True)
    dashboard_browser.shoot(page, "session-budget")

    # When the budget is raised from the form (what is typed stays while the page refreshes)
    page.evaluate(f"document.querySelector('{FORM}').dataset.mark = 'typed-in'")
    amount.fill("0.001")
    with page.expect_response(
        lambda reply: reply.url.endswith(f"/api/orchestrator/sessions/{sid}")
    ):
        pass  # the page's next look at the session (its poll)
    assert page.get_attribute(FORM, "data-mark") == "typed-in" and amount.input_value() == "0.001"
    page.click(f"{FORM} button.raise")

    # Then the session goes on and completes, and the page follows without a reload
    wait_status(page, "completed")
    done = chat_cluster.session(sid)
    assert done["status"] == "completed"
    assert done["cost"]["usd"] == FOUR_CALLS and Decimal(FOUR_CALLS) == 4 * CALL_USD
    wait_prefix(page, LINE, f"${FOUR_CALLS} · 4 model calls · 172 tokens · ")
    page.wait_for_function(
        "(text) => document.getElementById('budget').textContent === text",
        arg=f"Budget $0.001 · spent ${FOUR_CALLS}",
    )
    assert done["budget"] == {**done["budget"], "maxCostUsd": "0.001", "paused": False}
    assert page.locator(FORM).count() == 0
    assert page.text_content("#inputs .none") == "No step is waiting for input."
    assert page.evaluate("window.__samePage") is True
    assert errors == []


def test_a_raise_not_above_the_spending_is_refused_in_the_form_and_stop_fails_the_session(
    chat_cluster, page
):
    errors = watch_errors(page)
    # Given two Chatter steps, both parked on the session's budget: one form for both
    sid = submit(chat_cluster, "C", "D")
    open_paused(chat_cluster, page, sid, "C, D", after_pause=True)
    assert page.locator(FORM).count() == 1 and page.locator("form.input-form").count() == 0

    # When a raise below what was spent is sent, the form shows the API's refusal
    refused = requests.post(
        f"{chat_cluster.api_url}/api/orchestrator/sessions/{sid}/input",
        json={"stepId": "D", "value": {"raiseTo": 0.00001}},
        timeout=10,
    )
    assert refused.status_code == 422, refused.text
    message = refused.json()["error"]["message"]
    assert TWO_CALLS in message
    page.fill(f"{FORM} input[name=raiseTo]", "0.00001")
    page.click(f"{FORM} button.raise")
    page.wait_for_selector(f"{FORM} .form-result.problem")
    assert page.text_content(f"{FORM} .form-result") == message
    assert chat_cluster.session(sid)["status"] == "waiting_for_input"

    # And Stop fails the session with BudgetExceeded, shown on the page
    page.click(f"{FORM} button.stop")
    wait_status(page, "failed")
    stopped = chat_cluster.session(sid)
    assert stopped["status"] == "failed"
    # each parked step fails with the session's BudgetExceeded error and what was spent
    assert sorted((e["stepId"], e["errorType"]) for e in stopped["errors"]) == [
        ("C", "BudgetExceeded"),
        ("D", "BudgetExceeded"),
    ]
    reason = stopped["errors"][0]["message"]
    assert reason.startswith(f"budget exceeded: ${TWO_CALLS} spent of a $0.00003 budget")
    page.wait_for_function(
        "(text) => document.getElementById('budget').textContent === text",
        arg=f"Budget $0.00003 · spent ${TWO_CALLS} · stopped: BudgetExceeded",
    )
    assert page.get_attribute("#budget", "title") == reason
    for step_id in ("C", "D"):
        row = f'#steps tr[data-step="{step_id}"]'
        page.wait_for_function(
            "([row, text]) => document.querySelector(`${row} [data-field=output]`)"
            ".textContent === text",
            arg=[row, reason],
        )
        assert page.text_content(f"{row} [data-field=status] .badge") == "failed"
    page.wait_for_function(
        "() => document.querySelector('#logs').textContent.includes('BudgetExceeded')"
    )
    assert page.locator(FORM).count() == 0
    assert page.evaluate("window.__samePage") is True
    assert errors == []


def test_the_costs_page_shows_what_the_chatter_spent(chat_cluster, page):
    errors = watch_errors(page)
    if not SPENT:  # run alone: one session of its own
        sid = submit(chat_cluster, "C")
        wait_parked(chat_cluster, sid)
        requests.post(
            f"{chat_cluster.api_url}/api/orchestrator/sessions/{sid}/input",
            json={"stepId": "C", "value": {"stop": True}},
            timeout=10,
        ).raise_for_status()
    spent = sum(Decimal(chat_cluster.wait_session(sid)["cost"]["usd"]) for sid in SPENT)
    page.goto(f"{chat_cluster.api_url}/")
    page.click("nav a[href='/costs']")  # the nav link, on every page
    page.click("a[data-group='agent']")
    assert page.get_attribute("a[data-group='agent']", "aria-current") == "page"
    row = f'#costs tbody tr[data-key="{AGENT}"]'
    shown = page.text_content(f'{row} [data-field="usd"]')
    report = requests.get(
        f"{chat_cluster.api_url}/api/orchestrator/costs", params={"groupBy": "agent"}, timeout=10
    ).json()
    (group,) = [g for g in report["groups"] if g["key"] == AGENT]
    assert shown == f"${group['usd']}" and Decimal(group["usd"]) == spent
    assert page.text_content(f'{row} [data-field="calls"]') == str(group["modelCalls"])
    assert page.text_content(f'{row} [data-field="prompt"]') == str(group["promptTokens"])
    dashboard_browser.shoot(page, "costs")
    assert errors == []
