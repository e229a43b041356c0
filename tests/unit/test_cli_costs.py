"""What a session spent, from a terminal: the cost line of `meowstik status` and `meowstik costs`
(GET .../sessions/<id>/cost as tables), against a scripted API served by a real HTTP server on
loopback (test_cli_ops.py's): what is printed, the requests sent, and the exit codes. The cost
line has the dashboard's wording (api/static/dashboard.js, costLine)."""

from __future__ import annotations

import json

from cli.main import build_parser, main
from cli.rendering import cost_line, money, render_costs
from tests.unit import test_cli_ops
from tests.unit.test_cli_ops import api_error, cli, snapshot

# the scripted API and the clean environment of the ops commands' tests (fixtures)
api = test_cli_ops.api
clean_env = test_cli_ops.clean_env

SID = "sess-1"
ORCH = "/api/orchestrator"
PRICES = {"source": "/etc/meowstik/prices.yaml", "asOf": "2026-12-01"}


def figures(
    usd: str | None,
    calls: int,
    prompt: int,
    completion: int,
    cpu: float = 0.0,
    *,
    uncosted: int = 0,
    uncounted: int = 0,
    runs: int = 1,
) -> dict:
    """A cost's figures as the API writes them (usd null when no call had a price)."""
    return {
        "usd": usd,
        "promptTokens": prompt,
        "completionTokens": completion,
        "totalTokens": prompt + completion,
        "modelCalls": calls,
        "uncostedCalls": uncosted,
        "uncountedCalls": uncounted,
        "cpuSeconds": cpu,
        "wallSeconds": cpu * 3,
        "runs": runs,
    }


def session_cost(**total) -> dict:
    """The snapshot's ``cost``: two agents, one priced model."""
    return {
        **figures("0.0000711", 6, 404, 154, 0.42, runs=2),
        "byAgent": {
            "looper-001": figures("0.0000474", 4, 270, 100, 0.3),
            "writer-001": figures("0.0000237", 2, 134, 54, 0.12),
        },
        "byModel": {"gpt-4o-mini": figures("0.0000711", 6, 404, 154, runs=0)},
        **total,
    }


def cost_view(summary: dict, steps: list[dict]) -> dict:
    """GET .../cost: the summary, a row per step, the prices."""
    return {**summary, "sessionId": SID, "steps": steps, "prices": PRICES}


UNPRICED = "local-<b>llama</b>"
UNKNOWN = {
    **figures(None, 3, 90, 30, 1.5, uncosted=3),
    "byAgent": {"coder-001": figures(None, 3, 90, 30, 1.5, uncosted=3)},
    "byModel": {
        UNPRICED: figures(None, 2, 60, 20, uncosted=2, runs=0),
        "qwen-7b": figures(None, 1, 30, 10, uncosted=1, runs=0),
    },
}


# --- the cost line ------------------------------------------------------------------------------


def test_a_known_cost_is_the_exact_dollars_calls_tokens_and_cpu():
    assert cost_line(session_cost()) == "$0.0000711 · 6 model calls · 558 tokens · CPU 0.42 s"
    one = figures("0.000001", 1, 1000, 234, 12.345)
    assert cost_line(one) == "$0.000001 · 1 model call · 1,234 tokens · CPU 12.35 s"


def test_an_unknown_cost_names_every_model_without_a_price():
    assert cost_line(UNKNOWN) == (
        f"cost unknown (no price for {UNPRICED}, qwen-7b) · 3 model calls · 120 tokens · CPU 1.50 s"
    )
    assert money(UNKNOWN) == "cost unknown"


def test_a_known_cost_with_some_calls_unpriced_says_how_many_are_missing():
    partial = session_cost(uncostedCalls=2, uncountedCalls=1)
    assert cost_line(partial) == (
        "$0.0000711 + 2 calls without a price · 6 model calls (1 without token counts)"
        " · 558 tokens · CPU 0.42 s"
    )
    assert money(figures("0.1", 2, 1, 1, uncosted=1)) == "$0.1 + 1 call without a price"


def test_steps_that_made_no_model_call_cost_nothing():
    assert cost_line(figures("0", 0, 0, 0, 0.014)) == "$0 · 0 model calls · 0 tokens · CPU 0.01 s"


# --- meowstik status ----------------------------------------------------------------------------


def test_status_shows_the_cost_line_under_the_headline(api, capsys):
    done = snapshot("completed", {"A": {"status": "completed", "attempts": 1}})
    api.on("GET", f"{ORCH}/sessions/{SID}", 200, {**done, "cost": session_cost()})
    assert cli(api, "status", SID) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"session {SID}: completed")
    assert lines[1] == "cost: $0.0000711 · 6 model calls · 558 tokens · CPU 0.42 s"
    assert lines[2:4] == ["", "STEP  STATUS     AGENT  ATTEMPTS  DURATION"]


def test_status_of_a_session_with_an_unknown_cost_says_so(api, capsys):
    done = snapshot("completed", {"A": {"status": "completed", "attempts": 1}})
    unknown = {key: value for key, value in UNKNOWN.items() if key != "usd"}  # as the API omits it
    api.on("GET", f"{ORCH}/sessions/{SID}", 200, {**done, "cost": unknown})
    assert cli(api, "status", SID) == 0
    assert capsys.readouterr().out.splitlines()[1] == (
        f"cost: cost unknown (no price for {UNPRICED}, qwen-7b) · 3 model calls · 120 tokens"
        " · CPU 1.50 s"
    )


def test_status_of_a_session_that_spent_nothing_has_no_cost_line(api, capsys):
    api.on("GET", f"{ORCH}/sessions/{SID}", 200, snapshot("executing", {}))
    assert cli(api, "status", SID) == 0
    assert not any(line.startswith("cost:") for line in capsys.readouterr().out.splitlines())


# --- meowstik costs ------------------------------------------------------------------------------


def test_costs_prints_the_steps_the_totals_by_agent_by_model_and_the_prices(api, capsys):
    steps = [
        {"stepId": "plan", **figures("0.0000474", 4, 270, 100, 0.3)},
        {"stepId": "write", **figures("0.0000237", 2, 134, 54, 0.12)},
        {"stepId": "review", **figures("0", 0, 0, 0, runs=0)},
    ]
    api.on("GET", f"{ORCH}/sessions/{SID}/cost", 200, cost_view(session_cost(), steps))
    assert cli(api, "costs", SID) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"session {SID}: $0.0000711 · 6 model calls · 558 tokens · CPU 0.42 s",
        "",
        "STEP    CALLS  PROMPT  COMPLETION  USD        CPU S",
        "plan        4     270         100  0.0000474   0.30",
        "write       2     134          54  0.0000237   0.12",
        "review      0       0           0  0           0.00",
        "---------------------------------------------------",
        "total       6     404         154  0.0000711   0.42",
        "",
        "by agent:",
        "AGENT       CALLS  PROMPT  COMPLETION  USD        CPU S",
        "looper-001      4     270         100  0.0000474   0.30",
        "writer-001      2     134          54  0.0000237   0.12",
        "",
        "by model:",
        "MODEL        CALLS  PROMPT  COMPLETION  USD",
        "gpt-4o-mini      6     404         154  0.0000711",
        "",
        "prices: /etc/meowstik/prices.yaml, as of 2026-12-01",
    ]
    assert [(s.method, s.path) for s in api.sent] == [("GET", f"{ORCH}/sessions/{SID}/cost")]


def test_costs_of_a_session_with_an_unknown_cost_show_unknown_not_a_guess(api, capsys):
    steps = [{"stepId": "code", **figures(None, 3, 90, 30, 1.5, uncosted=3)}]
    view = {**cost_view(UNKNOWN, steps), "prices": {"source": "built-in examples", "asOf": None}}
    api.on("GET", f"{ORCH}/sessions/{SID}/cost", 200, view)
    assert cli(api, "costs", SID) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        f"session {SID}: cost unknown (no price for {UNPRICED}, qwen-7b) · 3 model calls"
        " · 120 tokens · CPU 1.50 s"
    )
    assert out[3] == "code       3      90          30  unknown   1.50"
    assert out[5] == "total      3      90          30  unknown   1.50"
    assert f"{UNPRICED}      2      60          20  unknown" in out
    assert out[-1] == "prices: built-in examples"


def test_a_partly_priced_row_says_how_many_calls_have_no_price():
    view = cost_view(session_cost(uncostedCalls=1), [])
    lines = render_costs({**view, "prices": None})
    total = next(line for line in lines if line.startswith("total"))
    assert total == "total      6     404         154  0.0000711 (+1 without a price)   0.42"
    assert lines[-1] == "prices: unknown"


def test_costs_json_prints_the_apis_document(api, capsys):
    view = cost_view(UNKNOWN, [{"stepId": "code", **figures(None, 3, 90, 30, 1.5, uncosted=3)}])
    api.on("GET", f"{ORCH}/sessions/{SID}/cost", 200, view)
    assert cli(api, "costs", SID, "--json") == 0
    assert json.loads(capsys.readouterr().out) == view


def test_costs_of_an_unknown_session_exits_3_with_the_apis_message(api, capsys):
    api.routes[("GET", f"{ORCH}/sessions/nope/cost")] = api_error(
        404, "session_not_found", "Session nope not found"
    )
    assert cli(api, "costs", "nope") == 3
    assert capsys.readouterr().err == (
        "meowstik costs: API error 404 session_not_found: Session nope not found\n"
    )


def test_costs_sends_the_token_and_is_in_the_help(api, capsys, monkeypatch):
    monkeypatch.setenv("MEOWSTIK_API_TOKEN", "t0ken")
    api.on("GET", f"{ORCH}/sessions/{SID}/cost", 200, cost_view(session_cost(), []))
    assert cli(api, "costs", SID) == 0
    assert api.sent[0].authorization == "Bearer t0ken"
    assert "costs" in build_parser().format_help()
    assert main(["costs"]) == 3  # a usage error: the session is required


def test_the_budget_line_says_the_limits_what_counts_and_how_to_answer_a_pause():
    from cli.rendering import budget_line

    running = {"maxCostUsd": "0.5", "maxTokens": None, "spentUsd": "0.12", "paused": False}
    assert budget_line(running) == "$0.5 (spent $0.12)"
    paused = {"maxCostUsd": None, "maxTokens": 2000, "spentTokens": 1990, "paused": True}
    line = budget_line(paused)
    assert line.startswith("2000 tokens (used 1990) · PAUSED: meowstik input <session> <step>")
    assert "'{\"raiseTo\": <dollars>}'" in line and "'{\"stop\": true}'" in line
