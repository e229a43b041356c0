"""`meowstik experiments` (the list) and `meowstik experiments NAME` (a report), against a
scripted API served by a real HTTP server on loopback (test_cli_ops.py's): what is printed, the
requests sent, --json, and the exit codes. The report is a real one: the API's own
``orchestrator.core.experiments.report`` over sessions whose figures are known (the same as
tests/unit/test_dashboard_experiments.py's, so the terminal and the page can be compared)."""

from __future__ import annotations

import json

from cli.main import build_parser, main
from cli.rendering import format_difference, format_p_value, format_seconds, format_usd
from orchestrator.core.experiments import Experiment, SessionOutcome, report
from tests.unit import test_cli_ops
from tests.unit.test_cli_ops import api_error, cli

# the scripted API and the clean environment of the ops commands' tests (fixtures)
api = test_cli_ops.api
clean_env = test_cli_ops.clean_env

ORCH = "/api/orchestrator"
CREATED = "2026-12-02T10:00:00.000Z"
ROUTING = {
    "name": "routing",
    "assignBy": "user",
    "createdAt": CREATED,
    "variants": [
        {"name": "control", "policy": "least_loaded"},
        {"name": "learned", "weight": 3, "policy": "learned"},
    ],
}
PLANNERS = {
    "name": "planners.v2",
    "match": "all",
    "status": "stopped",
    "createdAt": "2026-12-01T09:00:00.000Z",
    "stoppedAt": "2026-12-01T12:00:00.000Z",
    "variants": [{"name": "rules", "planner": "rule"}, {"name": "plain", "weight": 0.5}],
}


def document(experiment: dict) -> dict:
    """An experiment as the API writes it (every field, defaults filled in)."""
    return Experiment.model_validate(experiment).model_dump(mode="json", by_alias=True)


def routing_report(expired: int = 2) -> dict:
    """GET .../experiments/routing: control 6 of 12 completed (1.0, 1.2 or 1.4 s; $0.001,
    $0.002, $0.003 in turn), learned 19 of 20 (0.5, 0.6 or 0.7 s; $0.001 and $0.002) and one
    still running."""
    outcomes = [
        SessionOutcome(
            variant="control",
            status="completed" if i % 2 == 0 else "failed",
            duration_s=1.0 + 0.2 * (i // 2 % 3) if i % 2 == 0 else None,
            cost_usd=0.001 * (1 + i % 3),
        )
        for i in range(12)
    ]
    outcomes += [
        SessionOutcome(
            variant="learned",
            status="failed" if i == 7 else "completed",
            duration_s=None if i == 7 else 0.5 + 0.1 * (i % 3),
            cost_usd=0.001 * (1 + i % 2),
        )
        for i in range(20)
    ]
    outcomes.append(SessionOutcome(variant="learned", status="executing"))
    experiment = Experiment.model_validate(ROUTING)
    return report(experiment, outcomes, expired).model_dump(mode="json", by_alias=True)


# --- the list ---------------------------------------------------------------------------------


def test_experiments_lists_status_assignment_variants_with_weights_and_settings(api, capsys):
    listing = {"experiments": [document(ROUTING), document(PLANNERS)], "count": 2}
    api.on("GET", f"{ORCH}/experiments", 200, listing)
    assert cli(api, "experiments") == 0
    variants = "VARIANTS" + " " * 69
    assert capsys.readouterr().out.splitlines() == [
        f"NAME         STATUS   ASSIGN BY  MATCH  {variants}CREATED",
        "routing      running  user       named  control (weight 1: policy least_loaded), "
        "learned (weight 3: policy learned)  2026-12-02T10:00:00.000Z",
        "planners.v2  stopped  session    all    rules (weight 1: planner rule), "
        "plain (weight 0.5: nothing)                  2026-12-01T09:00:00.000Z",
    ]
    assert [(s.method, s.path, s.query) for s in api.sent] == [("GET", f"{ORCH}/experiments", "")]


def test_without_experiments_it_says_how_one_is_started(api, capsys):
    api.on("GET", f"{ORCH}/experiments", 200, {"experiments": [], "count": 0})
    assert cli(api, "experiments") == 0
    assert capsys.readouterr().out == (
        "no experiments yet (an admin token starts one: POST /api/orchestrator/experiments)\n"
    )


def test_experiments_json_prints_the_apis_listing(api, capsys):
    listing = {"experiments": [document(ROUTING)], "count": 1}
    api.on("GET", f"{ORCH}/experiments", 200, listing)
    assert cli(api, "experiments", "--json") == 0
    assert json.loads(capsys.readouterr().out) == listing


# --- a report ---------------------------------------------------------------------------------


def test_a_report_prints_the_variants_duration_cost_and_a_line_per_verdict(api, capsys):
    api.on("GET", f"{ORCH}/experiments/routing", 200, routing_report())
    assert cli(api, "experiments", "routing") == 0
    assert capsys.readouterr().out.splitlines() == [
        f"experiment routing: running, created {CREATED}, assigned by user, "
        "joined by sessions naming it, confidence 95%",
        "",
        "VARIANT  SETS                 WEIGHT   SESSIONS  RUNNING  ENDED  SUCCESS  95% INTERVAL",
        "control  policy least_loaded  1 (25%)        12        0     12      50%  [25.4%, 74.6%]",
        "learned  policy learned       3 (75%)        21        1     20      95%  [76.4%, 99.1%]",
        "",
        "duration (completed sessions, start to end):",
        "VARIANT   N   MEAN  95% INTERVAL      P50    P95",
        "control   6  1.20s  [1.01s, 1.39s]  1.20s  1.40s",
        "learned  19  595ms  [554ms, 636ms]  600ms  700ms",
        "",
        "cost (dollars per ended session):",
        "VARIANT   N     MEAN  95% INTERVAL                P50     P95",
        "control  12   $0.002  [$0.001458, $0.002542]   $0.002  $0.003",
        "learned  20  $0.0015  [$0.00126, $0.00174]    $0.0015  $0.002",
        "",
        "verdicts (each variant against the control; significant at p < 0.05):",
        "  success: learned - control = +45.0 pp, p = 0.00287 "
        "(two-proportion z-test (pooled, two-sided)): better: learned",
        "  duration: learned - control = -605ms, p = 2.6e-04 "
        "(Welch's t-test (two-sided)): better: learned",
        "  cost: learned - control = -$0.0005, p = 0.0844 "
        "(Welch's t-test (two-sided)): no significant difference",
        "",
        "expired: 2 assigned sessions removed by retention",
    ]
    assert [(s.method, s.path) for s in api.sent] == [("GET", f"{ORCH}/experiments/routing")]


def test_a_report_before_any_session_ended_says_nothing_was_tested(api, capsys):
    experiment = {
        **PLANNERS,
        "metrics": ["success", "durationS"],
        "confidence": 0.9,
    }
    empty = report(Experiment.model_validate(experiment), [], 0)
    api.on(
        "GET",
        f"{ORCH}/experiments/planners.v2",
        200,
        empty.model_dump(mode="json", by_alias=True),
    )
    assert cli(api, "experiments", "planners.v2") == 0
    assert capsys.readouterr().out.splitlines() == [
        "experiment planners.v2: stopped 2026-12-01T12:00:00.000Z, created "
        "2026-12-01T09:00:00.000Z, assigned by session, joined by every session, confidence 90%",
        "",
        "VARIANT  SETS          WEIGHT       SESSIONS  RUNNING  ENDED  SUCCESS  90% INTERVAL",
        "rules    planner rule  1 (66.7%)           0        0      0        -  -",
        "plain    nothing       0.5 (33.3%)         0        0      0        -  -",
        "",
        "duration (completed sessions, start to end):",
        "VARIANT  N  MEAN  90% INTERVAL  P50  P95",
        "rules    0     -  -               -    -",
        "plain    0     -  -               -    -",
        "",
        "verdicts (each variant against the control; significant at p < 0.1):",
        "  success: plain - rules = 0.0 pp, p = - (two-proportion z-test (pooled, two-sided)): "
        "not tested (too few sessions ended)",
        "  duration: plain - rules = 0ms, p = - (Welch's t-test (two-sided)): "
        "not tested (too few sessions ended)",
    ]


def test_a_report_json_prints_the_apis_report(api, capsys):
    body = routing_report()
    api.on("GET", f"{ORCH}/experiments/routing", 200, body)
    assert cli(api, "experiments", "routing", "--json") == 0
    assert json.loads(capsys.readouterr().out) == body


def test_an_unknown_experiment_exits_3_with_the_apis_message(api, capsys):
    message = "no experiment named 'nope' (GET /api/orchestrator/experiments lists them)"
    api.routes[("GET", f"{ORCH}/experiments/nope")] = api_error(
        404, "experiment_not_found", message
    )
    assert cli(api, "experiments", "nope") == 3
    assert capsys.readouterr().err == (
        f"meowstik experiments: API error 404 experiment_not_found: {message}\n"
    )


def test_experiments_send_the_token_quote_the_name_and_are_in_the_help(api, monkeypatch):
    monkeypatch.setenv("MEOWSTIK_API_TOKEN", "t0ken")
    api.on("GET", f"{ORCH}/experiments", 200, {"experiments": [], "count": 0})
    assert cli(api, "experiments") == 0
    assert api.sent[0].authorization == "Bearer t0ken"
    # a name the API could not hold is sent as one path segment (and is the API's 404)
    assert cli(api, "experiments", "a b/c") == 3
    assert api.sent[-1].path == f"{ORCH}/experiments/a%20b%2Fc"
    assert "experiments" in build_parser().format_help()
    assert main(["experiments", "a", "b"]) == 3  # a usage error: one name at most


def test_figures_are_written_in_the_terminals_short_words():
    assert [format_usd(v) for v in (None, 0, 0.0015, 0.0000123456, -0.5)] == [
        "-", "$0", "$0.0015", "$0.00001235", "-$0.5"
    ]  # fmt: skip
    assert [format_p_value(v) for v in (None, 0, 0.00026, 0.0844, 1)] == [
        "-", "< 1e-06", "2.6e-04", "0.0844", "1"
    ]  # fmt: skip
    assert [format_seconds(v) for v in (None, 0.35, -0.35, 1.5)] == [
        "-",
        "350ms",
        "-350ms",
        "1.50s",
    ]
    assert format_difference(0.45, "success") == "+45.0 pp"
    assert format_difference(-0.605, "durationS") == "-605ms"
    assert format_difference(0.002, "costUsd") == "+$0.002"


def test_a_variant_that_pins_agents_says_which():
    from cli.rendering import variant_sets

    variant = document(
        {
            "name": "pins",
            "createdAt": CREATED,
            "variants": [
                {"name": "a"},
                {"name": "b", "policy": "learned", "agentOverrides": {"web_research": "r-2"}},
            ],
        }
    )["variants"]
    assert [variant_sets(v) for v in variant] == [
        "nothing",
        "policy learned, web_research on r-2",
    ]
