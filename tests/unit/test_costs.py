"""Cost counting (issue 20, first part): the price table, exact money, and each model call
counted once, as it is recorded (record_call.lua), whatever replays or races follow."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from orchestrator.core.chat import Usage
from orchestrator.core.costs import cost_report, figures, session_cost
from orchestrator.core.errors import ConfigurationError
from orchestrator.core.prices import PICO_PER_USD, load_prices, parse_prices, pico_of_usd, usd
from orchestrator.store.costs import CostLedger
from orchestrator.store.keys import Keys
from orchestrator.store.turns import TurnJournal

KEYS = Keys("meowstik")


def test_the_shipped_table_says_it_is_examples_and_when_and_prices_known_models():
    table = load_prices()
    text = (Path(__file__).parents[2] / "orchestrator" / "prices.yaml").read_text()
    assert "THESE ARE EXAMPLES" in text and table.as_of
    cost = table.cost_pico(Usage(1_000_000, 1_000_000, 2_000_000), "gpt-4o-mini")
    assert usd(cost) == "0.75"  # 0.15 + 0.60
    assert table.cost_pico(Usage(10, 10, 20), "my-local-llama") is None  # never made up


def test_money_is_exact_where_floats_drift():
    table = parse_prices({"models": {"m": {"input": 0.1, "output": 0.2}}}, "test")
    one = table.cost_pico(Usage(1, 1, 2), "m")
    assert one == 300_000  # 0.3 * 10^-6 USD in pico-dollars
    total = sum(one for _ in range(10))
    assert usd(total) == "0.000003"
    assert Decimal(usd(total)) == Decimal("0.000003")
    assert usd(0) == "0" and usd(None) is None and usd(PICO_PER_USD * 12) == "12"


@pytest.mark.parametrize(
    "entry, problem",
    [
        ({"input": -1, "output": 1}, "non-negative"),
        ({"input": "0.0000001", "output": 1}, "at most 6 decimals"),
        ({"input": "cheap", "output": 1}, "not a number"),
        ({"input": True, "output": 1}, "not a price"),
        ({"input": 1}, "exactly 'input' and 'output'"),
        ({"input": 1, "output": 1, "cached": 0.5}, "exactly 'input' and 'output'"),
    ],
)
def test_a_bad_price_entry_is_refused_naming_it(entry, problem):
    with pytest.raises(ConfigurationError, match=problem) as caught:
        parse_prices({"models": {"gpt-x": entry}}, "prices.yaml")
    assert "gpt-x" in str(caught.value)


def test_a_prices_file_that_is_missing_or_not_a_table_is_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_prices(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigurationError, match="expected a mapping"):
        load_prices(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("models: {a: [\n")
    with pytest.raises(ConfigurationError, match="not YAML"):
        load_prices(tmp_path / "broken.yaml")
    assert pico_of_usd("1.5", "x") == 1_500_000_000_000
    with pytest.raises(ConfigurationError):
        pico_of_usd("-1", "budget")


def record(journal, field, usage, cost_pico, model="m-1"):
    return journal.record_call(
        "s-1",
        field,
        {"kind": "model", "reply": {"content": field}},
        step_id=field.split("|")[0],
        agent_id="agent-1",
        model=model,
        usage=usage,
        cost_pico=cost_pico,
        now_ms=NOW_MS,
    )


NOW_MS = 1_796_000_000_000


def test_a_call_is_counted_once_when_recorded_and_never_again(any_redis):
    any_redis.hset(KEYS.session("s-1"), mapping={"status": "executing", "userId": "alice"})
    journal = TurnJournal(any_redis, KEYS)
    first = record(journal, "a|agent-1|c1", Usage(31, 12, 43), 1000)
    again = journal.record_call(  # another run, racing: the first record holds
        "s-1",
        "a|agent-1|c1",
        {"kind": "model", "reply": {"content": "other"}},
        step_id="a",
        agent_id="agent-1",
        model="m-1",
        usage=Usage(99, 99, 198),
        cost_pico=99_999,
        now_ms=NOW_MS,
    )
    assert again == first and first["reply"]["content"] == "a|agent-1|c1"
    record(journal, "b|agent-1|c1", None, None, model="odd|name")  # no tokens, no price
    counters = CostLedger(any_redis, KEYS).counters("s-1")
    total = figures(counters, "t|")
    assert (total.model_calls, total.prompt_tokens, total.completion_tokens) == (2, 31, 12)
    assert (total.uncosted_calls, total.uncounted_calls, total.usd) == (1, 1, "0.000000001")
    assert figures(counters, "m|odd/name|").model_calls == 1  # "|" cannot split the names
    totals = CostLedger(any_redis, KEYS).totals()
    assert totals["u|alice|calls"] == 2 and totals["am|agent-1|m-1|prompt"] == 31
    hour = NOW_MS // 3_600_000
    bucket = {k.decode(): int(v) for k, v in any_redis.hgetall(KEYS.cost_hour(hour)).items()}
    assert bucket["u|alice|calls"] == 2 and bucket["a|agent-1|pico"] == 1000
    assert any_redis.ttl(KEYS.cost_hour(hour)) > 0  # it expires (history days after its hour)


def test_runs_add_cpu_and_wall_time_and_the_view_has_a_row_per_step(any_redis):
    ledger = CostLedger(any_redis, KEYS)
    any_redis.hset(KEYS.session("s-2"), "status", "executing")
    ledger.add_run("s-2", "a", "agent-1", cpu_s=0.25, wall_s=1.5, peak_rss_kb=51200, now_ms=NOW_MS)
    ledger.add_run("s-2", "a", "agent-1", cpu_s=0.5, wall_s=0.25, peak_rss_kb=20480, now_ms=NOW_MS)
    ledger.add_run("s-2", "b", "agent-2", cpu_s=0, wall_s=0, now_ms=NOW_MS)  # RSS unknown
    view = session_cost("s-2", ledger.counters("s-2"), ["a", "b"])
    assert (view.cpu_seconds, view.wall_seconds, view.runs) == (0.75, 1.75, 3)
    assert [(row.step_id, row.runs) for row in view.steps] == [("a", 2), ("b", 1)]
    assert view.usd == "0" and view.model_calls == 0
    # the peak is the largest run's, not a sum; a run that could not measure it adds none
    assert view.peak_rss_mb == 50.0 and view.steps[1].peak_rss_mb is None
    assert ledger.totals()["a|agent-1|cpu_us"] == 750_000
    # the hour's counters have CPU by user ("-": no userId) and agent, for GET /costs
    hours = ledger.hours(NOW_MS // 3_600_000, NOW_MS // 3_600_000)
    report = cost_report(hours, "agent", "s", "u", None)
    assert [(g.key, g.cpu_seconds, g.runs) for g in report.groups] == [
        ("agent-1", 0.75, 2),
        ("agent-2", 0.0, 1),
    ]
    assert cost_report(hours, "user", "s", "u", None).groups[0].cpu_seconds == 0.75


def test_a_run_counted_after_its_session_ended_expires_with_it_and_none_outlives_it(any_redis):
    """Runs are folded in later (metric facts, lua/_slots.lua fold_metrics): a session whose
    keys already expire (it ended) gets a costs hash expiring with it, and a session retention
    removed gets none (the all-time and hourly counters still count the run)."""
    ledger = CostLedger(any_redis, KEYS)
    any_redis.hset(KEYS.session("ended"), "status", "completed")
    any_redis.pexpire(KEYS.session("ended"), 60_000)
    ledger.add_run("ended", "a", "agent-1", cpu_s=1, wall_s=1, now_ms=NOW_MS)
    ledger.add_run("gone", "a", "agent-1", cpu_s=2, wall_s=1, now_ms=NOW_MS)
    assert ledger.counters("ended")["t|cpu_us"] == 1_000_000
    assert 0 < any_redis.pttl(KEYS.costs("ended")) <= 60_000
    assert not any_redis.exists(KEYS.costs("gone"))
    assert ledger.totals()["a|agent-1|cpu_us"] == 3_000_000


def test_reported_spending_is_parsed_strictly():
    from orchestrator.core.costs import reported_spending

    assert reported_spending(None, None, "x") is None
    assert reported_spending({"prompt_tokens": 5, "completion_tokens": 1}, 0.5, "x") == {
        "prompt": "5",
        "completion": "1",
        "pico": "500000000000",
        "model": "agent-reported",
    }
    assert reported_spending(Usage(1, 2, 3), None, "x")["pico"] == ""
    for usage, cost, problem in [
        ({"promptTokens": -1}, None, "whole number"),
        ({"promptTokens": 1.5}, None, "whole number"),
        ("lots", None, "must be an object"),
        (None, "free", "amount"),
        (None, True, "must be a number"),
        (None, -0.1, "non-negative"),
    ]:
        with pytest.raises(ValueError, match=problem):
            reported_spending(usage, cost, "agent a")


def test_a_python_agents_reported_cost_counts_once_with_its_completion(real_redis):
    from orchestrator.core.models import OrchestrateRequest
    from orchestrator.core.steps import StepResult
    from orchestrator.settings import Settings
    from tests.support.world import build_world

    world = build_world(real_redis, Settings(), prefix="meowstik")
    plan = {
        "steps": [{"id": s, "title": s, "requiredCapabilities": ["web_research"]} for s in "ab"]
    }
    sid = world.engine.submit(
        OrchestrateRequest.model_validate({"goal": "g", "plan": plan})
    ).session_id
    run = world.lifecycle.begin(sid, "a", "researcher-001")
    spent = StepResult("done", usage={"promptTokens": 10, "completionTokens": 2}, cost_usd="0.01")
    assert world.lifecycle.succeed(run, spent).code == "ok"
    assert world.lifecycle.succeed(run, spent).code == "duplicate"  # redelivered: not again
    bad = world.lifecycle.begin(sid, "b", "researcher-001")
    assert world.lifecycle.succeed(bad, StepResult("x", cost_usd="a lot")).code == "ok"
    counters = CostLedger(real_redis, KEYS).counters(sid)
    assert figures(counters, "t|").usd == "0.01" and figures(counters, "s|a|").agent_reports == 1
    snapshot = world.engine.snapshot(sid)
    assert snapshot.steps["b"].status == "failed"
    assert (
        "costUsd" in snapshot.steps["b"].error
        and "report whole tokens" in snapshot.steps["b"].error
    )


ALICE, BOB, ADMIN = "alice-token-0123456789", "bob-token-0123456789ab", "admin-token-0123456789"


@pytest.fixture
def costs_client(any_redis):
    from api import create_app
    from orchestrator.settings import Settings
    from tests.support.recording import RecordingDispatcher

    tokens = f"alice:user:{ALICE},bob:user:{BOB},ops:admin:{ADMIN}"
    app = create_app(
        Settings(api_tokens=tokens), redis_client=any_redis, dispatcher=RecordingDispatcher()
    )
    journal = TurnJournal(any_redis, KEYS)
    spend = [("s-a", "alice", "agent-1", "m-1", 1000), ("s-b", "bob", "agent-2", "m-2", 5)]
    for sid, user, agent, model, pico in spend:
        any_redis.hset(KEYS.session(sid), mapping={"status": "executing", "userId": user})
        journal.record_call(
            sid,
            f"x|{agent}|c1",
            {"kind": "model", "reply": {}},
            step_id="x",
            agent_id=agent,
            model=model,
            usage=Usage(10, 5, 15),
            cost_pico=pico,
            now_ms=NOW_MS,
        )
    return app.test_client()


def report(client, token, **query):
    query = {"since": str(NOW_MS - 3_600_000), "until": str(NOW_MS), **query}
    return client.get(
        "/api/orchestrator/costs", query_string=query, headers={"Authorization": f"Bearer {token}"}
    )


def test_costs_by_user_agent_and_model_admins_see_all_users_their_own(costs_client):
    every = report(costs_client, ADMIN).get_json()
    assert [(g["key"], g["usd"]) for g in every["groups"]] == [
        ("alice", "0.000000001"),
        ("bob", "0.000000000005"),
    ]
    assert every["total"]["modelCalls"] == 2 and every["total"]["promptTokens"] == 20
    assert every["since"].endswith(":00:00.000Z") or every["since"].endswith(":00:00Z")
    by_model = report(costs_client, ADMIN, groupBy="model").get_json()
    assert [g["key"] for g in by_model["groups"]] == ["m-1", "m-2"]
    own = report(costs_client, BOB, groupBy="agent").get_json()
    assert [(g["key"], g["modelCalls"]) for g in own["groups"]] == [("agent-2", 1)]
    assert own["total"]["usd"] == "0.000000000005"
    mine = report(costs_client, ALICE).get_json()
    assert [g["key"] for g in mine["groups"]] == ["alice"]
    earlier = report(costs_client, ADMIN, since="0", until=str(NOW_MS - 7_200_000)).get_json()
    assert earlier["groups"] == [] and earlier["total"]["modelCalls"] == 0


@pytest.mark.parametrize(
    "query, location",
    [
        ({"groupBy": "team"}, "query.groupBy"),
        ({"since": "yesterday"}, "query.since"),
        ({"until": "9" * 30}, "query.until"),
        ({"since": str(NOW_MS), "until": str(NOW_MS - 1)}, "query.since"),
        ({"since": "2026-13-45T00:00:00Z"}, "query.since"),
        ({"surprise": "1"}, "query.surprise"),
    ],
)
def test_bad_cost_queries_answer_422_saying_where(costs_client, query, location):
    reply = report(costs_client, ADMIN, **query)
    assert reply.status_code == 422, reply.get_data(as_text=True)
    errors = reply.get_json()["error"]["details"]["errors"]
    assert errors[0]["location"] == location
