"""How agents did across sessions, on the dashboard, in a real headless Chromium against a real
cluster: after steps that succeed, fail for good and are retried on two test agents (their
outcome chosen by step parameters), the agents page and each agent's page show the success
rate, run counts, run times and failures by type that GET /api/orchestrator/agents/<id>/metrics
answers. Screenshots: test-artifacts/screenshots/agents-metrics.png and agent-metrics.png."""

from __future__ import annotations

import pytest
import requests

from api.routes.dashboard import run_time
from tests.integration import test_dashboard_browser as dashboard_browser
from tests.support.plans import step

pytestmark = pytest.mark.integration

browser = dashboard_browser.browser  # the same Chromium fixtures (skipped/required alike)
page = dashboard_browser.page

WINDOWS = ("1h", "24h", "all")
COUNTS = {  # the page's field -> the API's
    "started": "started",
    "succeeded": "succeeded",
    "failed": "failed",
    "retried": "retried",
    "fallback": "fallback",
    "timed_out": "timedOut",
}
# stateful-001 (state_work): write_shared succeeds, write_then_fail raises PermanentStepError
# (no other agent has state_work: it fails for good). flaky-001 (flaky_work): a retryable error
# until attempt succeedOn, then success.
STATEFUL, FLAKY = "stateful-001", "flaky-001"


def shared(step_id: str) -> dict:
    return step(step_id, "state_work", mode="write_shared", key=step_id, value=1)


def failing(step_id: str) -> dict:
    return step(step_id, "state_work", mode="write_then_fail", key=step_id, value=1)


@pytest.fixture(scope="module")
def ran(cluster) -> dict[str, dict[str, dict]]:
    """One session's runs (the module's cluster has run nothing else on these agents), then
    the API's metrics of both agents: {agent: {window: metrics}}."""
    steps = [
        shared("ok1"),
        shared("ok2"),
        shared("ok3"),
        failing("bad1"),
        failing("bad2"),
        step("f1", "flaky_work", succeedOn=1),
        step("f2", "flaky_work", succeedOn=2),
    ]
    body = {"goal": "agent metrics", "plan": {"steps": steps}, "failurePolicy": "continue"}
    done = cluster.wait_session(cluster.submit(body)["sessionId"])
    statuses = {step_id: state["status"] for step_id, state in done["steps"].items()}
    assert statuses == {
        "ok1": "completed",
        "ok2": "completed",
        "ok3": "completed",
        "bad1": "failed",
        "bad2": "failed",
        "f1": "completed",
        "f2": "completed",
    }, done["errors"]
    return {
        agent: {w: api_metrics(cluster, agent, w) for w in WINDOWS} for agent in (STATEFUL, FLAKY)
    }


def api_metrics(cluster, agent_id: str, window: str) -> dict:
    response = requests.get(
        f"{cluster.api_url}/api/orchestrator/agents/{agent_id}/metrics",
        params={"window": window},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def percent(rate: float) -> str:
    return f"{round(rate * 100, 1):g}%"


def ended(metrics: dict) -> int:
    return sum(metrics[name] for name in COUNTS.values() if name != "started")


ROW = """row => {
  const text = field => row.querySelector(`[data-field="${field}"]`).textContent;
  return {
    success: row.querySelector('[data-field="success"]').dataset.value,
    successText: text("success"),
    runs: text("runs"),
    p50: text("p50"),
    p95: text("p95"),
    trend: text("trend"),
  };
}"""

DETAIL = """() => {
  const byWindow = tr => Object.fromEntries(
    [...tr.querySelectorAll("td[data-window]")].map(td => [td.dataset.window, td.textContent]));
  const byField = tr => Object.fromEntries(
    [...tr.querySelectorAll("td[data-field]")].map(td => [td.dataset.field, td.textContent]));
  const rows = selector => [...document.querySelectorAll(selector)];
  return {
    id: document.getElementById("agent-id").textContent,
    cells: Object.fromEntries(
      rows("#agent-metrics tbody tr").map(tr => [tr.dataset.field, byWindow(tr)])),
    failures: Object.fromEntries(
      rows("#agent-failures tr[data-error-type]").map(tr => [tr.dataset.errorType, byWindow(tr)])),
    capabilities: Object.fromEntries(rows("#agent-capabilities tr[data-capability]")
      .map(tr => [tr.dataset.capability, byField(tr)])),
  };
}"""


def test_the_api_counted_every_run_of_the_session(ran):
    stateful, flaky = ran[STATEFUL]["all"], ran[FLAKY]["all"]
    assert {k: stateful[k] for k in COUNTS.values()} == {
        "started": 5, "succeeded": 3, "failed": 2, "retried": 0, "fallback": 0, "timedOut": 0
    }  # fmt: skip
    assert stateful["successRate"] == 0.6
    assert stateful["failedByType"] == {"PermanentStepError": 2}
    assert {k: flaky[k] for k in COUNTS.values()} == {
        "started": 3, "succeeded": 2, "failed": 0, "retried": 1, "fallback": 0, "timedOut": 0
    }  # fmt: skip
    assert flaky["successRate"] == 0.6667
    for agent in (STATEFUL, FLAKY):  # it all happened within the hour
        for window in ("1h", "24h"):
            for name in COUNTS.values():
                assert ran[agent][window][name] == ran[agent]["all"][name], (agent, window)


def test_the_agents_page_shows_each_agents_day_as_the_api_counts_it(cluster, ran, page):
    page.goto(cluster.api_url + "/agents")
    for agent in (STATEFUL, FLAKY):
        day, hour = ran[agent]["24h"], ran[agent]["1h"]
        row = f'#agents tr[data-agent="{agent}"]'
        page.wait_for_function(
            "([row, runs]) => document.querySelector(`${row} [data-field=runs]`)"
            "?.textContent === runs",
            arg=[row, str(ended(day))],
        )
        shown = page.eval_on_selector(row, ROW)
        assert shown == {
            "success": str(day["successRate"]),
            "successText": percent(day["successRate"]),
            "runs": str(ended(day)),
            "p50": run_time(day["run"]["p50S"]),
            "p95": run_time(day["run"]["p95S"]),
            # the same runs in the hour and the day: no change
            "trend": f"→ {percent(hour['successRate'])} last hour",
        }, agent
    dashboard_browser.shoot(page, "agents-metrics")


@pytest.mark.parametrize("agent", [STATEFUL, FLAKY])
def test_the_agent_page_shows_every_window_failures_by_type_and_capabilities(
    cluster, ran, page, agent
):
    # Given the agents page, when the agent's link is followed
    page.goto(cluster.api_url + "/agents")
    page.click(f'#agents tr[data-agent="{agent}"] a[href="/agents/{agent}"]')
    page.wait_for_selector("#agent-metrics tbody tr[data-field=started]")
    assert page.url == f"{cluster.api_url}/agents/{agent}"
    # Then its page shows the API's figures of each window
    shown = page.evaluate(DETAIL)
    windows = ran[agent]
    assert shown["id"] == agent
    for field, name in COUNTS.items():
        assert shown["cells"][field] == {w: str(windows[w][name]) for w in WINDOWS}, field
    assert shown["cells"]["success_rate"] == {
        w: percent(windows[w]["successRate"]) for w in WINDOWS
    }
    for quantile in ("p50", "p95"):
        assert shown["cells"][f"run_{quantile}"] == {
            w: run_time(windows[w]["run"][f"{quantile}S"]) for w in WINDOWS
        }
        assert shown["cells"][f"wait_{quantile}"] == {
            w: run_time(windows[w]["queueWait"][f"{quantile}S"]) for w in WINDOWS
        }
    types = sorted({t for w in WINDOWS for t in windows[w]["failedByType"]})
    assert shown["failures"] == {
        t: {w: str(windows[w]["failedByType"].get(t, 0)) for w in WINDOWS} for t in types
    }
    capabilities = windows["all"]["byCapability"]
    assert shown["capabilities"] == {
        cap: {
            **{field: str(counts[name]) for field, name in COUNTS.items()},
            "success_rate": percent(counts["successRate"]),
        }
        for cap, counts in capabilities.items()
    }
    if agent == STATEFUL:
        assert shown["failures"] == {"PermanentStepError": {"1h": "2", "24h": "2", "all": "2"}}
        assert shown["capabilities"]["state_work"]["success_rate"] == "60%"
        dashboard_browser.shoot(page, "agent-metrics")
    else:
        assert shown["failures"] == {}  # retried, never failed for good
        assert shown["cells"]["retried"] == {"1h": "1", "24h": "1", "all": "1"}
