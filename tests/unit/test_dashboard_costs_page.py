"""The dashboard's costs page (/costs) and the session page's budget, through Flask's test
client: spending by user, agent or model over a window, counted the real way (each model call
recorded by TurnJournal.record_call, as the tool loop records them), the same figures and the
same query checks as GET /api/orchestrator/costs, names escaped, a user's token seeing its own
spending only; and the session page drawn while a budget pause holds its steps: one budget form
for them all. (tests/integration/test_dashboard_budget.py drives both in a real browser.)"""

from __future__ import annotations

import html
import json
import re
import time

import pytest

from api import create_app
from api.openapi import build_document
from orchestrator.core.chat import Usage
from orchestrator.core.models import AgentDefinition, Capability, OrchestrateRequest
from orchestrator.core.step_runs import StepRun
from orchestrator.engine.budgets import CallRefused
from orchestrator.settings import Settings
from orchestrator.store.costs import CostLedger
from orchestrator.store.keys import Keys
from orchestrator.store.turns import TurnJournal
from tests.support.recording import RecordingDispatcher
from tests.support.world import build_world

ALICE, BOB, ADMIN = "alice-token-0123456789", "bob-token-0123456789ab", "admin-token-0123456789"
TOKENS = f"alice:user:{ALICE},bob:user:{BOB},ops:admin:{ADMIN}"
HOUR_MS = 3_600_000
HOSTILE_AGENT = "<script>window.__xss = 1</script>"
HOSTILE_MODEL = 'm <img src=x onerror="alert(1)"> & "co"'
CALL_TOKENS = Usage(10, 5, 15)


def now_ms() -> int:
    return int(time.time() * 1000)


def spend(client, sid, user, agent, model, pico, *, at_ms, call="c1", usage=CALL_TOKENS):
    """One model call of ``agent`` in session ``sid`` (of ``user``), recorded as the tool loop
    records it: the session's, the hour's and the totals' counters."""
    keys = Keys(Settings().key_prefix)
    client.hset(keys.session(sid), mapping={"status": "executing", "userId": user})
    TurnJournal(client, keys).record_call(
        sid,
        f"x|{agent}|{call}",
        {"kind": "model", "reply": {}},
        step_id="x",
        agent_id=agent,
        model=model,
        usage=usage,
        cost_pico=pico,
        now_ms=at_ms,
    )


@pytest.fixture
def costs(any_redis):
    """The app with three tokens, and spending this hour: alice's with agent-1 on m-1 (two
    calls), bob's with agent-2 on m-2, and an earlier call of alice's three hours ago."""
    app = create_app(
        Settings(api_tokens=TOKENS), redis_client=any_redis, dispatcher=RecordingDispatcher()
    )
    now = now_ms()
    spend(any_redis, "s-a", "alice", "agent-1", "m-1", 1000, at_ms=now)
    spend(any_redis, "s-a", "alice", "agent-1", "m-1", 1000, at_ms=now, call="c2")
    spend(any_redis, "s-b", "bob", "agent-2", "m-2", 5, at_ms=now, usage=Usage(7, 3, 10))
    spend(any_redis, "s-old", "alice", "agent-1", "m-1", 10**9, at_ms=now - 3 * HOUR_MS)
    # one step run of alice's on agent-1: CPU by user and by agent, none by model
    ledger = CostLedger(any_redis, Keys(Settings().key_prefix))
    ledger.add_run("s-a", "x", "agent-1", cpu_s=1.5, wall_s=2, peak_rss_kb=1024, now_ms=now)
    return app.test_client(), any_redis


def get(client, path, token=ADMIN, **query):
    return client.get(path, query_string=query, headers={"Authorization": f"Bearer {token}"})


def rows(page: str, section: str = "tbody") -> list[list[str]]:
    """The costs table's rows (of its tbody or tfoot) as the text of their cells."""
    body = re.search(rf"<{section}>(.*?)</{section}>", page, re.S)
    assert body, page
    found = []
    for row in re.findall(r"<tr data-key=.*?</tr>", body.group(1), re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        found.append([html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells])
    return found


def test_the_costs_page_shows_spending_by_user_agent_and_model_as_the_api_counts_it(costs):
    client, _ = costs
    # the default: by user, over the last day (the earlier call counts too)
    response = get(client, "/costs")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert rows(page) == [
        ["alice", "3", "30", "15", "$0.001000002", "1", "1.50"],
        ["bob", "1", "7", "3", "$0.000000000005", "0", "0.00"],
    ]
    assert rows(page, "tfoot") == [["Total", "4", "37", "18", "$0.001000002005", "1", "1.50"]]
    assert 'data-group="user" class="current"' in page
    assert 'data-window="1d" class="current"' in page
    # the same figures as the API's report for the same window
    api = get(client, "/api/orchestrator/costs").get_json()
    assert [[g["key"], g["usd"]] for g in api["groups"]] == [[r[0], r[4][1:]] for r in rows(page)]
    assert f'<time id="since">{api["since"]}</time>' in page

    # grouped by agent and by model, over the last hour (the earlier call left out)
    page = get(client, "/costs", groupBy="agent", window="1h").get_data(as_text=True)
    assert rows(page) == [
        ["agent-1", "2", "20", "10", "$0.000000002", "1", "1.50"],
        ["agent-2", "1", "7", "3", "$0.000000000005", "0", "0.00"],
    ]
    assert 'data-group="agent" class="current"' in page
    assert 'data-window="1h" class="current"' in page
    assert "<th>Agent</th>" in page
    page = get(client, "/costs", groupBy="model", window="7d").get_data(as_text=True)
    assert [row[0] for row in rows(page)] == ["m-1", "m-2"]
    assert rows(page)[0][1] == "3" and rows(page)[0][5:] == ["-", "-"]  # no CPU by model
    # the links keep the other choice: grouping keeps the window, a window keeps the grouping
    assert 'href="/costs?groupBy=user&amp;window=7d"' in page
    assert 'href="/costs?groupBy=model&amp;window=30d"' in page

    # an explicit since/until window, as the API takes them (epoch ms or ISO 8601)
    earlier = get(client, "/costs", since="0", until=str(now_ms() - 2 * HOUR_MS)).get_data(
        as_text=True
    )
    assert rows(earlier) == [["alice", "1", "10", "5", "$0.001", "0", "0.00"]]
    assert 'class="current"' in earlier.split('<div class="window-links"')[0]  # the grouping
    assert "aria-current" not in earlier.split('<div class="window-links"')[1].split("</div>")[0]
    nothing = get(client, "/costs", since="2001-01-01T00:00:00Z", until="2001-01-02T00:00:00Z")
    assert "No spending in this window." in nothing.get_data(as_text=True)
    assert "<tfoot>" not in nothing.get_data(as_text=True)


def test_a_users_token_sees_only_its_own_spending(costs):
    client, _ = costs
    page = get(client, "/costs", token=BOB).get_data(as_text=True)
    assert rows(page) == [["bob", "1", "7", "3", "$0.000000000005", "0", "0.00"]]
    assert "(your own spending)" in page
    page = get(client, "/costs", token=ALICE, groupBy="agent").get_data(as_text=True)
    assert rows(page) == [["agent-1", "3", "30", "15", "$0.001000002", "1", "1.50"]]
    assert "agent-2" not in page
    assert "/queues" not in page  # a user's nav has no admin pages, and has the costs page
    assert 'href="/costs"' in page
    # without credentials, the login page (like every dashboard page)
    anonymous = client.get("/costs?groupBy=agent")
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/login?next=/costs")


def test_names_are_shown_as_text_and_an_unpriced_model_costs_unknown(fake_redis):
    client = create_app(
        Settings(), redis_client=fake_redis, dispatcher=RecordingDispatcher()
    ).test_client()
    now = now_ms()
    spend(fake_redis, "s-h", "mallory", HOSTILE_AGENT, HOSTILE_MODEL, None, at_ms=now)
    spend(fake_redis, "s-h", "mallory", "agent-1", "m-1", 1000, at_ms=now, call="c2")
    by_agent = client.get("/costs?groupBy=agent").get_data(as_text=True)
    by_model = client.get("/costs?groupBy=model").get_data(as_text=True)
    for page in (by_agent, by_model):
        assert "<script>window" not in page and "<img src=x" not in page
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in by_agent
    assert "m &lt;img src=x onerror=&#34;alert(1)&#34;&gt; &amp; &#34;co&#34;" in by_model
    assert rows(by_agent) == [
        [HOSTILE_AGENT, "1", "10", "5", "unknown", "0", "0.00"],
        ["agent-1", "1", "10", "5", "$0.000000001", "0", "0.00"],
    ]
    assert '<td data-field="usd" class="unknown">unknown</td>' in by_agent
    # some calls priced: the total is theirs, and says how many had no price
    assert rows(by_model, "tfoot") == [
        ["Total", "2", "20", "10", "$0.000000001 + 1 call without a price", "-", "-"]
    ]


@pytest.mark.parametrize(
    "query, location",
    [
        ({"groupBy": "team"}, "query.groupBy"),
        ({"since": "yesterday"}, "query.since"),
        ({"until": "9" * 30}, "query.until"),
        ({"since": "2026-13-45T00:00:00Z"}, "query.since"),
        ({"since": "1700000000000", "until": "1600000000000"}, "query.since"),
        ({"surprise": "1"}, "query.surprise"),
    ],
)
def test_bad_queries_answer_the_apis_422_saying_where(costs, query, location):
    client, _ = costs
    page = get(client, "/costs", **query)
    api = get(client, "/api/orchestrator/costs", **query)
    assert page.status_code == api.status_code == 422, page.get_data(as_text=True)
    assert page.mimetype == "application/json"
    assert page.get_json() == api.get_json()  # the same code, message and location
    assert page.get_json()["error"]["details"]["errors"][0]["location"] == location


@pytest.mark.parametrize(
    "query, location, message",
    [
        ({"window": "2d"}, "query.window", "'1h', '1d', '7d' or '30d'"),
        ({"window": "1h", "since": "0"}, "query.window", "give since or window, not both"),
    ],
)
def test_a_bad_window_answers_422_saying_what_it_may_be(costs, query, location, message):
    client, _ = costs
    reply = get(client, "/costs", **query)
    assert reply.status_code == 422
    error = reply.get_json()["error"]
    assert error["details"]["errors"][0]["location"] == location
    assert message in error["message"]


def test_the_costs_page_is_documented_and_linked_from_every_page(costs):
    client, _ = costs
    operation = build_document()["paths"]["/costs"]["get"]
    assert set(operation["responses"]["200"]["content"]) == {"text/html"}
    assert {"302", "422", "503"} <= set(operation["responses"])
    names = {param["name"] for param in operation["parameters"]}
    assert {"groupBy", "since", "until", "window"} <= names
    sessions = get(client, "/").get_data(as_text=True)
    assert '<a href="/costs">Costs</a>' in sessions


# --- the session page while its budget holds its steps -----------------------------------------

CHAT = AgentDefinition(
    id="chat", name="chat", type="t", max_load=10, capabilities=[Capability(name="chat")]
)
CALL_PICO = 10_000_000  # $0.00001 a call


@pytest.fixture
def budgeted(fake_redis):
    """Steps a and b of a session with a $0.00001 budget: a made one call, then both asked for
    another and parked on the budget."""
    settings = Settings(budget_decision_timeout_s=60)
    world = build_world(fake_redis, settings, prefix=settings.key_prefix, agents=(CHAT,))
    world.clock.now_s = time.time()
    app = create_app(settings, redis_client=fake_redis, dispatcher=RecordingDispatcher())
    steps = [{"id": s, "title": s, "requiredCapabilities": ["chat"]} for s in ("a", "b")]
    body = {"goal": "g", "plan": {"steps": steps}, "budget": {"maxCostUsd": 0.00001}}
    sid = world.engine.submit(OrchestrateRequest.model_validate(body)).session_id
    runs = [world.lifecycle.begin(sid, step_id, "chat") for step_id in ("a", "b")]
    assert all(isinstance(run, StepRun) for run in runs)
    journal = TurnJournal(fake_redis, Keys(settings.key_prefix))
    for number, run in enumerate((runs[0], runs[0], runs[1]), 1):
        try:
            world.lifecycle.budgets.before_call(
                sid,
                run.step_id,
                run.agent_id,
                token=run.token,
                hold=f"{run.step_id}|chat|c{number}",
                model="m",
            )
        except CallRefused:
            continue
        journal.bound(sid, run.step_id, "chat").record_call(
            f"c{number}",
            {"kind": "model", "reply": {}},
            model="m",
            usage=Usage(30, 10, 40),
            cost_pico=CALL_PICO,
            now_ms=world.now_ms(),
        )
    snapshot = world.engine.snapshot(sid)
    assert {s.status for s in snapshot.steps.values()} == {"waiting_for_input"}
    return app.test_client(), world, sid


def test_the_session_page_draws_one_budget_form_for_every_parked_step(budgeted):
    client, _, sid = budgeted
    page = client.get(f"/sessions/{sid}").get_data(as_text=True)
    # one budget form for both steps, none of the generic JSON forms
    assert page.count('<form class="budget-form"') == 1
    assert 'class="input-form"' not in page and "No step is waiting for input." not in page
    form = page[page.index('<form class="budget-form"') : page.index("</form>")]
    assert 'data-step="a"' in form
    assert '<span class="parked">a, b</span>' in form
    assert "Budget $0.00001 reached after $0.00001 spent." in html.unescape(form)
    assert '<input type="number" name="raiseTo" step="any" min="0" value="0.00002">' in form
    assert '<button type="submit" class="raise">Raise budget</button>' in form
    assert '<button type="button" class="stop">Stop session</button>' in form
    assert '<span class="form-result" role="status"></span>' in form
    # the budget line's figures, drawn by dashboard.js
    line = re.search(r'<span id="budget" class="budget-line" data-budget="([^"]*)"', page)
    budget = json.loads(html.unescape(line.group(1)))
    assert budget["paused"] is True and budget["maxCostUsd"] == "0.00001"
    assert budget["spentUsd"] == "0.00001" and budget["spentTokens"] == 40


def test_once_stopped_the_page_has_no_form_and_says_why_the_session_failed(budgeted):
    client, world, sid = budgeted
    answer = client.post(
        f"/api/orchestrator/sessions/{sid}/input", json={"stepId": "b", "value": {"stop": True}}
    )
    assert answer.status_code == 200, answer.get_json()
    page = client.get(f"/sessions/{sid}").get_data(as_text=True)
    assert "budget-form" not in page.split('<div id="inputs">')[1].split("</div>")[0]
    assert "No step is waiting for input." in page
    stopped = re.search(r'data-stopped="([^"]*)"', page).group(1)
    assert stopped.startswith("budget exceeded: $0.00001 spent of a $0.00001 budget")
    assert world.engine.snapshot(sid).status == "failed"
