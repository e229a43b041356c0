"""An A/B experiment on the dashboard, in a real headless Chromium against a real cluster: the
simulated fleet of benchmarks/learn_agents.py (a good agent, a 5x slower one, one that fails 30 %
of its steps) with no retries and no fallback, as `make learn-bench` runs it; an experiment
created over HTTP splits 120 one-step sessions between least_loaded and learned, four in
flight. The experiments page lists it; its report page, reached by the link, shows each
variant's session counts and success rate, the verdict rows and the "better" headlines exactly
as GET /api/orchestrator/experiments/<name> reports them (which variant wins is left to chance:
only page == API is asserted). Screenshots: test-artifacts/screenshots/experiments.png and
experiment-report.png."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from api.routes.dashboard import percent
from cli.main import main
from tests.integration import test_dashboard_browser as dashboard_browser
from tests.support.cluster import Cluster

pytestmark = pytest.mark.integration

browser = dashboard_browser.browser  # the same Chromium fixtures (skipped/required alike)
page = dashboard_browser.page

AGENTS = ("sim-good", "sim-slow", "sim-flaky")
SESSIONS = 120
IN_FLIGHT = 4
NAME = "routing-ab"
EXPERIMENT = {
    "name": NAME,
    "variants": [
        {"name": "least_loaded", "policy": "least_loaded"},
        {"name": "learned", "policy": "learned"},
    ],
}
PLAN = {"steps": [{"id": "s", "title": "work", "requiredCapabilities": ["sim_work"]}]}


@pytest.fixture(scope="module")
def sim_cluster(redis_server, tmp_path_factory):
    """A worker hosting the simulated fleet and the API, on the shared Redis (flushed)."""
    redis.Redis.from_url(redis_server.url).flushall()
    cluster = Cluster(
        redis_server.url,
        tmp_path_factory.mktemp("experiment-logs"),
        {
            "MEOWSTIK_AGENT_MODULES": "benchmarks.learn_agents",
            "MEOWSTIK_STEP_MAX_ATTEMPTS": "1",
            "MEOWSTIK_MAX_FALLBACKS": "0",
            "MEOWSTIK_CIRCUIT_FAILURE_THRESHOLD": "1000000",  # the bandit, not the breaker
        },
    )
    try:
        cluster.start_worker(concurrency=6, agents=",".join(AGENTS))
        cluster.start_api()
        cluster.wait_ready(set(AGENTS))
        yield cluster
    finally:
        cluster.stop()


def api_report(cluster: Cluster) -> dict:
    response = requests.get(f"{cluster.api_url}/api/orchestrator/experiments/{NAME}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def ran(sim_cluster) -> dict[str, str]:
    """The experiment, created over HTTP, and SESSIONS sessions naming it, every one ended:
    {session id: its variant}."""
    created = requests.post(
        f"{sim_cluster.api_url}/api/orchestrator/experiments", json=EXPERIMENT, timeout=10
    )
    assert created.status_code == 201, created.text

    def one(index: int) -> tuple[str, str]:
        body = {"goal": f"ab {index}", "plan": PLAN, "experiment": NAME}
        submitted = sim_cluster.submit(body)
        done = sim_cluster.wait_session(submitted["sessionId"], timeout_s=60)
        assert done["experiment"]["name"] == NAME
        return done["sessionId"], done["experiment"]["variant"]

    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        return dict(pool.map(one, range(SESSIONS)))


def test_the_api_report_counts_every_session_in_its_variant(sim_cluster, ran):
    report = api_report(sim_cluster)
    counted = {v["name"]: (v["sessions"], v["running"], v["ended"]) for v in report["variants"]}
    assigned = {
        name: sum(1 for variant in ran.values() if variant == name)
        for name in ("least_loaded", "learned")
    }
    assert counted == {name: (n, 0, n) for name, n in assigned.items()}
    assert sum(assigned.values()) == SESSIONS and all(assigned.values())
    assert [(v["metric"], v["control"], v["variant"]) for v in report["verdicts"]] == [
        ("success", "least_loaded", "learned"),
        ("durationS", "least_loaded", "learned"),
        ("costUsd", "least_loaded", "learned"),
    ]


LISTED = """row => ({
  status: row.querySelector('[data-field="status"]').textContent.trim(),
  variants: [...row.querySelectorAll('li[data-variant]')].map(li => [
    li.dataset.variant, li.querySelector('[data-field="sets"]').textContent]),
})"""

REPORT = """() => {
  const cell = (row, field) => row.querySelector(`[data-field="${field}"]`);
  return {
    name: document.getElementById("experiment-name").textContent,
    variants: [...document.querySelectorAll("#variants tbody tr[data-variant]")].map(row => ({
      name: row.dataset.variant,
      sessions: cell(row, "sessions").textContent,
      running: cell(row, "running").textContent,
      ended: cell(row, "ended").textContent,
      success: cell(row, "success").dataset.value,
      successText: cell(row, "success").textContent,
    })),
    verdicts: [...document.querySelectorAll("#verdicts tbody tr[data-metric]")].map(row => ({
      metric: cell(row, "metric").dataset.value,
      control: cell(row, "control").textContent,
      variant: cell(row, "variant").textContent,
      significant: cell(row, "significant").dataset.value,
      better: cell(row, "better").dataset.value,
      pValue: cell(row, "p-value").dataset.value,
    })),
    headlines: [...document.querySelectorAll("#headlines p.headline[data-metric]")].map(p => [
      p.dataset.metric, p.querySelector('[data-field="better"]').textContent]),
  };
}"""


def test_the_report_page_reached_from_the_list_shows_what_the_api_reports(sim_cluster, ran, page):
    # Given the experiments page, listing the experiment with its variants
    page.goto(f"{sim_cluster.api_url}/experiments")
    row = f'#experiments tr[data-experiment="{NAME}"]'
    page.wait_for_selector(row)
    assert page.eval_on_selector(row, LISTED) == {
        "status": "running",
        "variants": [["least_loaded", "policy least_loaded"], ["learned", "policy learned"]],
    }
    dashboard_browser.shoot(page, "experiments")
    # When its report link is followed
    page.click(f"{row} a.report")
    page.wait_for_selector("#verdicts tbody tr[data-metric]")
    assert page.url == f"{sim_cluster.api_url}/experiments/{NAME}"
    shown = page.evaluate(REPORT)
    report = api_report(sim_cluster)  # every session has ended: the page's figures stand
    # Then each variant's counts and success rate are the API's
    assert shown["name"] == NAME
    assert shown["variants"] == [
        {
            "name": v["name"],
            "sessions": str(v["sessions"]),
            "running": str(v["running"]),
            "ended": str(v["ended"]),
            "success": str(v["success"]["mean"]),
            "successText": percent(v["success"]["mean"]),
        }
        for v in report["variants"]
    ]
    # and so are the verdicts, and a headline names the better variant of each significant one
    assert shown["verdicts"] == [
        {
            "metric": v["metric"],
            "control": v["control"],
            "variant": v["variant"],
            "significant": "true" if v["significant"] else "false",
            "better": v["better"] or "",
            "pValue": "" if v["pValue"] is None else str(v["pValue"]),
        }
        for v in report["verdicts"]
    ]
    assert shown["headlines"] == [
        [v["metric"], v["better"]] for v in report["verdicts"] if v["better"]
    ]
    if not shown["headlines"]:
        assert page.is_visible("#headlines p.headline.none")
    dashboard_browser.shoot(page, "experiment-report")


def test_an_unknown_experiment_is_the_not_found_page(sim_cluster, ran, page):
    response = page.goto(f"{sim_cluster.api_url}/experiments/nobody")
    assert response is not None and response.status == 404
    assert page.text_content("h1") == "No experiment nobody"
    page.click("text=All experiments")
    page.wait_for_selector(f'#experiments tr[data-experiment="{NAME}"]')


def test_the_cli_prints_the_same_report(sim_cluster, ran, capsys):
    assert main(["experiments", NAME, "--json", "--api-url", sim_cluster.api_url]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == api_report(sim_cluster)
    assert main(["experiments", "--api-url", sim_cluster.api_url]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith("NAME") and listed[1].startswith(f"{NAME}  running  session")
