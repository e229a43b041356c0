"""The dashboard's experiment pages (/experiments and /experiments/<name>) through Flask's test
client: the list (status, variants with weights and what each sets, created, a link), the report
(per variant sessions, success rate, duration and cost with their intervals; the verdicts and a
"better: X" headline when one is significant), the 404 page of an unknown name, escaping, and
that both pages are documented and behind the login like every dashboard page.

The sessions are run through the engine with a manual clock, and each one's variant is chosen
by its user (``assignBy: "user"``: the assignment hashes the experiment's name with the user
id), so every figure on the page is known exactly. (tests/integration/
test_dashboard_experiments.py drives the pages in a real browser against a real cluster.)"""

from __future__ import annotations

import html
import re
import time

import pytest

from api import create_app
from api.openapi import build_document
from api.routes.dashboard import difference, dollars, duration, p_value
from orchestrator.core.chat import Usage
from orchestrator.core.errors import PermanentStepError
from orchestrator.core.experiments import Experiment, ExperimentRequest, assign
from orchestrator.core.models import OrchestrateRequest
from orchestrator.core.step_runs import StepRun
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from orchestrator.store.keys import Keys
from orchestrator.store.turns import TurnJournal
from tests.support.recording import RecordingDispatcher
from tests.support.world import build_world

ADMIN, BOB = "admin-token-0123456789", "bob-token-0123456789ab"
TOKENS = f"ops:admin:{ADMIN},bob:user:{BOB}"
PLAN = {"steps": [{"id": "s", "title": "s", "requiredCapabilities": ["web_research"]}]}
ROUTING = {
    "name": "routing",
    "assignBy": "user",
    "variants": [
        {"name": "control", "policy": "least_loaded"},
        {"name": "learned", "weight": 3, "policy": "learned"},
    ],
}
MILLI = 10**9  # $0.001 in picodollars
HOSTILE = "<script>window.__xss = 1</script>"


@pytest.fixture
def env(fake_redis):
    # failures for good do not open the agent's circuit here: every session needs it
    settings = Settings(api_tokens=TOKENS, circuit_failure_threshold=1000)
    world = build_world(fake_redis, settings, prefix=settings.key_prefix)
    world.clock.now_s = time.time()
    app = create_app(settings, redis_client=fake_redis, dispatcher=RecordingDispatcher())
    world.journal = TurnJournal(fake_redis, Keys(settings.key_prefix))  # the model calls' ledger
    return app.test_client(), world


def get(client, path, token=ADMIN):
    return client.get(path, headers={"Authorization": f"Bearer {token}"})


def create(client, body) -> dict:
    response = client.post(
        "/api/orchestrator/experiments", json=body, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def users_of(experiment: dict, variant: str, count: int) -> list[str]:
    """``count`` user ids the experiment assigns to ``variant`` (assignment by user)."""
    model = Experiment.model_validate(experiment)
    found = [f"user-{i}" for i in range(400) if assign(model, "-", f"user-{i}").name == variant]
    assert len(found) >= count
    return found[:count]


def run_session(world, experiment: str, user: str, ok: bool | None, seconds: float, pico: int):
    """A one-step session of ``user`` in the experiment that completes (ok), fails for good
    (not ok) or keeps running (None) ``seconds`` after it started, having spent ``pico``
    picodollars on one model call."""
    body = {"goal": "g", "userId": user, "experiment": experiment, "plan": PLAN}
    snapshot = world.engine.submit(OrchestrateRequest.model_validate(body))
    sid = snapshot.session_id
    run = world.lifecycle.begin(sid, "s", snapshot.steps["s"].agent_id)
    assert isinstance(run, StepRun)
    if pico:
        world.journal.record_call(
            sid,
            f"s|{run.agent_id}|c1",
            {"kind": "model", "reply": {}},
            step_id="s",
            agent_id=run.agent_id,
            model="m",
            usage=Usage(10, 5, 15),
            cost_pico=pico,
            now_ms=world.now_ms(),
        )
    world.clock.advance(seconds)
    if ok is True:
        world.lifecycle.succeed(run, StepResult("ok"))
    elif ok is False:
        world.lifecycle.fail(run, PermanentStepError("nope"))
    return sid


@pytest.fixture
def ran(env):
    """The routing experiment: control 6 of 12 completed (1.0, 1.2 or 1.4 s) and 6 failed;
    learned 19 of 20 completed (0.5, 0.6 or 0.7 s), 1 failed and 1 still running. Control's
    sessions spent $0.001, $0.002, $0.003 in turn, learned's $0.001 and $0.002."""
    client, world = env
    experiment = create(client, ROUTING)
    control, learned = users_of(experiment, "control", 12), users_of(experiment, "learned", 21)
    for i, user in enumerate(control):
        run_session(
            world, "routing", user, i % 2 == 0, 1.0 + 0.2 * (i // 2 % 3), MILLI * (1 + i % 3)
        )
    for i, user in enumerate(learned[:20]):
        run_session(world, "routing", user, i != 7, 0.5 + 0.1 * (i % 3), MILLI * (1 + i % 2))
    run_session(world, "routing", learned[20], None, 0.1, 0)
    return client, world


def cells(page: str, row: str) -> dict[str, str]:
    """The text of each ``data-field`` cell of the first ``<tr ...>`` starting with ``row``
    (tags as spaces, white space collapsed)."""
    start = page.index(row)
    body = page[start : page.index("</tr>", start)]
    found = re.findall(r'<t[hd][^>]*data-field="([^"]+)"[^>]*>(.*?)</t[hd]>', body, re.S)
    return {
        field: " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())
        for field, text in found
    }


def values(page: str, row: str) -> dict[str, str]:
    """The ``data-value`` of each ``data-field`` cell of that row."""
    start = page.index(row)
    body = page[start : page.index("</tr>", start)]
    found = re.findall(r'data-field="([^"]+)"[^>]*data-value="([^"]*)"', body)
    return dict(found)


# --- the list ---------------------------------------------------------------------------------


def test_the_experiments_page_lists_status_variants_weights_what_each_sets_and_a_link(env):
    client, _ = env
    routing = create(client, ROUTING)
    planning = create(
        client,
        {
            "name": "planners.v2",
            "match": "all",
            "variants": [{"name": "rules", "planner": "rule"}, {"name": "llm", "planner": "llm"}],
        },
    )
    stopped = client.post(
        "/api/orchestrator/experiments/planners.v2/stop",
        headers={"Authorization": f"Bearer {ADMIN}"},
    ).get_json()
    response = get(client, "/experiments")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert cells(page, '<tr data-experiment="routing">') == {
        "name": "routing",
        "status": "running",
        "variants": "control (control) weight 1, 25% : policy least_loaded "
        "learned weight 3, 75% : policy learned",
        "assign-by": "user (a user keeps one variant)",
        "match": "sessions naming it",
        "created": routing["createdAt"],
    }
    assert cells(page, '<tr data-experiment="planners.v2">') == {
        "name": "planners.v2",
        "status": f"stopped since {stopped['stoppedAt']}",
        "variants": "rules (control) weight 1, 50% : planner rule llm weight 1, 50% : planner llm",
        "assign-by": "session",
        "match": "every session",
        "created": planning["createdAt"],
    }
    # oldest first, as the API lists them; each links to its report
    assert page.index('data-experiment="routing"') < page.index('data-experiment="planners.v2"')
    assert '<a href="/experiments/routing">routing</a>' in page
    assert '<a class="report" href="/experiments/planners.v2">Report</a>' in page
    assert '<span class="badge experiment-stopped">stopped</span>' in page
    # what a variant without settings changes, and the page linked from the nav of every page
    create(client, {"name": "plain", "variants": [{"name": "a"}, {"name": "b", "weight": 0.5}]})
    page = get(client, "/experiments").get_data(as_text=True)
    plain = cells(page, '<tr data-experiment="plain">')["variants"]
    assert plain == (
        "a (control) weight 1, 66.7% : nothing (the request's own settings) "
        "b weight 0.5, 33.3% : nothing (the request's own settings)"
    )
    for path in ("/", "/agents", "/costs", "/experiments/routing"):
        assert '<a href="/experiments">Experiments</a>' in get(client, path).get_data(as_text=True)


def test_without_experiments_the_page_says_how_to_start_one(env):
    client, _ = env
    page = get(client, "/experiments").get_data(as_text=True)
    assert '<tr class="none"><td colspan="7">No experiments yet.' in page


# --- the report -------------------------------------------------------------------------------


def test_the_report_shows_each_variants_figures_and_the_verdicts_as_the_api_reports_them(ran):
    client, _ = ran
    response = get(client, "/experiments/routing")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    api = get(client, "/api/orchestrator/experiments/routing").get_json()
    # figures checked by hand: Wilson 95 % of 6/12 is 0.5 +- 0.2462, of 19/20 0.7639 to 0.9911;
    # control's durations 1.2 +- 2.5706 * 0.0730 (t, 5 df), learned's mean 11.3 / 19 = 0.5947;
    # costs: control 0.002 +- 2.2010 * 0.000246 (t, 11 df)
    assert cells(page, '<tr data-variant="control">') == {
        "name": "control (control)",
        "sets": "policy least_loaded",
        "weight": "1 (25%)",
        "sessions": "12",
        "running": "0",
        "ended": "12",
        "success": "50%",
        "success-interval": "25.4% – 74.6%",
        "duration": "1.2 s",
        "duration-interval": "1.01 s – 1.39 s",
        "duration-p50": "1.2 s",
        "duration-p95": "1.4 s",
        "cost": "$0.002",
        "cost-interval": "$0.001458 – $0.002542",
        "cost-p50": "$0.002",
        "cost-p95": "$0.003",
    }
    assert cells(page, '<tr data-variant="learned">') == {
        "name": "learned",
        "sets": "policy learned",
        "weight": "3 (75%)",
        "sessions": "21",
        "running": "1",
        "ended": "20",
        "success": "95%",
        "success-interval": "76.4% – 99.1%",
        "duration": "595 ms",
        "duration-interval": "554 ms – 636 ms",
        "duration-p50": "600 ms",
        "duration-p95": "700 ms",
        "cost": "$0.0015",
        "cost-interval": "$0.00126 – $0.00174",
        "cost-p50": "$0.0015",
        "cost-p95": "$0.002",
    }
    # the page's exact values are the API's
    for shown, reported in zip(("control", "learned"), api["variants"], strict=True):
        exact = values(page, f'<tr data-variant="{shown}">')
        assert float(exact["success"]) == reported["success"]["mean"]
        assert float(exact["duration"]) == reported["durationS"]["mean"]
        assert float(exact["cost"]) == reported["costUsd"]["mean"]
    # the verdicts: learned succeeds more and is faster, significantly; cheaper, not significantly
    success = cells(page, '<tr data-metric="success" data-variant="learned"')
    assert success == {
        "metric": "Success rate",
        "control": "control",
        "variant": "learned",
        "difference": "+45.0 pp",
        "p-value": "0.00287",
        "test": "two-proportion z-test (pooled, two-sided)",
        "significant": "yes",
        "better": "learned",
    }
    speed = cells(page, '<tr data-metric="durationS" data-variant="learned"')
    assert speed["difference"] == "-605 ms" and speed["better"] == "learned"
    assert speed["test"] == "Welch's t-test (two-sided)" and speed["p-value"] == "2.6e-04"
    assert cells(page, '<tr data-metric="costUsd" data-variant="learned"') == {
        "metric": "Cost",
        "control": "control",
        "variant": "learned",
        "difference": "-$0.0005",
        "p-value": "0.0844",
        "test": "Welch's t-test (two-sided)",
        "significant": "no",
        "better": "–",
    }
    shown = [
        values(page, f'<tr data-metric="{metric}" data-variant="learned"')
        for metric in ("success", "durationS", "costUsd")
    ]
    assert [
        (row["metric"], row["significant"] == "true", row["better"] or None) for row in shown
    ] == [(v["metric"], v["significant"], v["better"]) for v in api["verdicts"]]
    assert [float(row["p-value"]) for row in shown] == [v["pValue"] for v in api["verdicts"]]
    # a headline per significant verdict; the page refreshes while a session runs
    headlines = re.findall(r'<p class="headline" data-metric="([^"]+)"[^>]*>(.*?)</p>', page, re.S)
    against = "learned against control"
    assert [(metric, re.sub(r"<[^>]+>", "", text)) for metric, text in headlines] == [
        ("success", f"Success rate: better: learned ({against}: +45.0 pp, p = 0.00287)"),
        ("durationS", f"Duration: better: learned ({against}: -605 ms, p = 2.6e-04)"),
    ]
    assert '<meta http-equiv="refresh" content="5">' in page
    assert "confidence 95%" in page and "below 0.05" in page


def test_a_report_without_ended_sessions_shows_dashes_and_only_the_experiments_metrics(env):
    client, _ = env
    create(
        client,
        {
            "name": "early",
            "variants": [{"name": "a"}, {"name": "b"}],
            "metrics": ["success"],
            "confidence": 0.9,
        },
    )
    client.post(
        "/api/orchestrator/experiments/early/stop", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    page = get(client, "/experiments/early").get_data(as_text=True)
    assert cells(page, '<tr data-variant="a">') == {
        "name": "a (control)",
        "sets": "nothing (the request's own settings)",
        "weight": "1 (50%)",
        "sessions": "0",
        "running": "0",
        "ended": "0",
        "success": "–",
        "success-interval": "–",
    }
    assert "Duration mean" not in page and "Cost mean" not in page
    assert "<th>90% interval</th>" in page and "below 0.1;" in page
    assert cells(page, '<tr data-metric="success" data-variant="b"') == {
        "metric": "Success rate",
        "control": "a",
        "variant": "b",
        "difference": "0.0 pp",
        "p-value": "–",
        "test": "two-proportion z-test (pooled, two-sided)",
        "significant": "no",
        "better": "–",
    }
    assert 'data-metric="durationS"' not in page
    assert '<p class="headline none">No significant difference at 90% confidence.</p>' in page
    assert 'http-equiv="refresh"' not in page  # nothing runs: nothing to wait for
    assert '<span class="badge experiment-stopped" id="experiment-status">stopped</span>' in page


def test_an_unknown_experiment_is_a_404_page_showing_the_name_as_text(env):
    client, _ = env
    response = get(client, "/experiments/nope")
    page = response.get_data(as_text=True)
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "<h1>No experiment nope</h1>" in page and "<title>Not found · Meowstik</title>" in page
    assert '<a href="/experiments">All experiments</a>' in page
    hostile = get(client, "/experiments/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    assert hostile.status_code == 404
    text = hostile.get_data(as_text=True)
    assert "No experiment &lt;img src=x onerror=alert(1)&gt;" in text and "<img" not in text


def test_what_a_variant_sets_is_shown_as_text(env):
    client, world = env
    engine = world.engine.experiments
    engine.create(
        ExperimentRequest.model_validate(
            {
                "name": "hostile",
                "variants": [
                    {"name": "a", "template": HOSTILE},
                    {"name": "b", "agentOverrides": {"web_research": "researcher-002"}},
                ],
            }
        )
    )
    for path in ("/experiments", "/experiments/hostile"):
        page = get(client, path).get_data(as_text=True)
        assert HOSTILE not in page, path
        assert "template &lt;script&gt;window.__xss = 1&lt;/script&gt;" in page, path
        assert "web_research on researcher-002" in page, path


def test_both_pages_are_documented_for_anyone_logged_in_and_send_others_to_the_login(env):
    client, _ = env
    create(client, ROUTING)
    paths = build_document()["paths"]
    for path in ("/experiments", "/experiments/{name}"):
        responses = paths[path]["get"]["responses"]
        assert set(responses["200"]["content"]) == {"text/html"}, path
        assert "Location" in responses["302"]["headers"], path
    assert set(paths["/experiments/{name}"]["get"]["responses"]["404"]["content"]) == {
        "text/html",
        "application/json",
    }
    # a user's token reads them (the reports are for anyone, like the API's)
    assert get(client, "/experiments", token=BOB).status_code == 200
    assert get(client, "/experiments/routing", token=BOB).status_code == 200
    for path in ("/experiments", "/experiments/routing"):
        anonymous = client.get(path)
        assert anonymous.status_code == 302
        assert anonymous.headers["Location"].startswith(f"/login?next={path}")


def test_differences_p_values_durations_and_dollars_are_written_in_short_words():
    assert [dollars(v) for v in (None, 0, 0.001, 0.0000123456, 12.5, -0.5, 1234567.0)] == [
        "–", "$0", "$0.001", "$0.00001235", "$12.5", "-$0.5", "$1235000"
    ]  # fmt: skip
    assert [p_value(v) for v in (None, 0, 0.000013, 0.00289, 0.0421, 0.5, 1)] == [
        "–", "< 1e-06", "1.3e-05", "0.00289", "0.0421", "0.5", "1"
    ]  # fmt: skip
    assert [duration(v) for v in (None, 0.35, -0.35, 75.0)] == [
        "–", "350 ms", "-350 ms", "1 min 15 s"
    ]  # fmt: skip
    assert difference(0.45, "success") == "+45.0 pp"
    assert difference(-0.0238, "success") == "-2.4 pp"
    assert difference(-0.6034, "durationS") == "-603 ms"
    assert difference(0.002, "costUsd") == "+$0.002"
    assert difference(0.0, "costUsd") == "$0"
