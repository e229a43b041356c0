"""A/B experiments (issue 21): deterministic assignment by weight, variants that change the
session's policy, the report's statistics checked against hand computations, and the API's
errors."""

import math
from collections import Counter

import pytest

from api import create_app
from orchestrator.core.experiments import (
    Experiment,
    SessionOutcome,
    Variant,
    assign,
    report,
)
from orchestrator.core.models import AgentDefinition, Capability
from orchestrator.core.significance import (
    incomplete_beta,
    t_two_sided_p,
    two_proportion_z,
    welch_t,
    wilson_interval,
)
from orchestrator.core.step_runs import StepRun
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from tests.support.recording import RecordingDispatcher
from tests.support.world import build_world

ADMIN = "admin-token-0123456789"
PLAN = {"steps": [{"id": "s", "title": "s", "requiredCapabilities": ["w"]}]}


def experiment(**overrides):
    fields = {
        "name": "exp",
        "variants": [Variant(name="a", weight=1), Variant(name="b", weight=3)],
        "created_at": "2026-12-02T00:00:00Z",
        **overrides,
    }
    return Experiment(**fields)


def test_assignment_is_deterministic_and_follows_the_weights():
    exp = experiment()
    got = Counter(assign(exp, f"orch-{i}", None).name for i in range(8000))
    assert abs(got["b"] / 8000 - 0.75) < 0.02
    assert assign(exp, "orch-7", None) == assign(exp, "orch-7", None)
    by_user = experiment(assign_by="user")
    assert {assign(by_user, f"orch-{i}", "alice").name for i in range(50)} == {
        assign(by_user, "x", "alice").name
    }


def test_the_statistics_match_hand_computations():
    # I_x(2, 3) = 6x^2 - 8x^3 + 3x^4 (the Beta(2, 3) CDF)
    assert incomplete_beta(2, 3, 0.4) == pytest.approx(6 * 0.16 - 8 * 0.064 + 3 * 0.0256)
    # Student t table: P(|T| >= 2.228) = 0.05 at 10 degrees of freedom; t with 1 df is Cauchy
    assert t_two_sided_p(2.228, 10) == pytest.approx(0.05, abs=2e-4)
    assert t_two_sided_p(1.0, 1) == pytest.approx(0.5, abs=1e-9)
    # two proportions, 45/100 vs 60/100: pooled p 0.525
    se = math.sqrt(0.525 * 0.475 * (2 / 100))
    z = 0.15 / se
    comparison = two_proportion_z(45, 100, 60, 100)
    assert comparison.statistic == pytest.approx(z)
    assert comparison.p_value == pytest.approx(math.erfc(z / math.sqrt(2)))
    # Wilson interval of 8 of 10 at 95 % (z = 1.959964)
    zz = 1.959964
    centre = (0.8 + zz**2 / 20) / (1 + zz**2 / 10)
    half = zz * math.sqrt(0.8 * 0.2 / 10 + zz**2 / 400) / (1 + zz**2 / 10)
    low, high = wilson_interval(8, 10, 0.95)
    assert (low, high) == (
        pytest.approx(centre - half, abs=1e-6),
        pytest.approx(centre + half, abs=1e-6),
    )
    # Welch: [1, 2, 3, 4] vs [2, 4, 6, 8, 10]
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0, 10.0]
    va, vb = 5 / 3, 10.0
    t = (6 - 2.5) / math.sqrt(va / 4 + vb / 5)
    df = (va / 4 + vb / 5) ** 2 / ((va / 4) ** 2 / 3 + (vb / 5) ** 2 / 4)
    welch = welch_t(a, b)
    assert welch.statistic == pytest.approx(t)
    assert welch.p_value == pytest.approx(t_two_sided_p(t, df))
    assert 0.05 < welch.p_value < 0.1  # not significant at 95 %


def test_the_report_names_the_better_variant_only_when_significant():
    exp = experiment(variants=[Variant(name="control"), Variant(name="learned")])
    outcomes = [
        SessionOutcome(variant="control", status="completed" if i % 5 else "failed",
                       duration_s=1.0 + (i % 3) * 0.1, cost_usd=0.01)
        for i in range(200)
    ] + [
        SessionOutcome(variant="learned", status="completed" if i % 50 else "failed",
                       duration_s=1.0 + (i % 3) * 0.1, cost_usd=0.01)
        for i in range(200)
    ] + [SessionOutcome(variant="learned", status="executing")]  # fmt: skip
    result = report(exp, outcomes, expired=2)
    control, learned = result.variants
    assert (control.ended, learned.ended, learned.running) == (200, 200, 1)
    assert control.success.mean == 0.8 and learned.success.mean == 0.98
    success = next(v for v in result.verdicts if v.metric == "success")
    assert success.significant and success.better == "learned"
    assert success.difference == pytest.approx(0.18)
    duration = next(v for v in result.verdicts if v.metric == "durationS")
    assert not duration.significant and duration.better is None
    assert result.expired == 2


def test_a_duration_interval_never_reaches_below_zero():
    # two sessions, 0.1 s and 2.0 s: mean 1.05, t(0.975, 1 df) = 12.706, so the t interval is
    # 1.05 -/+ 12.706 * 0.95 = [-11.02, 13.12]; durations cannot be negative: [0, 13.12]
    exp = experiment(variants=[Variant(name="control"), Variant(name="other")])
    outcomes = [
        SessionOutcome(variant="control", status="completed", duration_s=d, cost_usd=0.0)
        for d in (0.1, 2.0)
    ]
    summary = report(exp, outcomes, expired=0).variants[0].duration_s
    assert summary.mean == pytest.approx(1.05)
    assert summary.interval.low == 0.0
    assert summary.interval.high == pytest.approx(1.05 + 12.7062 * 0.95, rel=1e-4)


def test_a_variant_sets_the_sessions_policy_and_the_report_counts_them(any_redis):
    agents = tuple(
        AgentDefinition(id=i, name=i, type="t", max_load=50, capabilities=[Capability(name="w")])
        for i in ("x1", "x2")
    )
    world = build_world(any_redis, Settings(), agents=agents)
    from orchestrator.core.experiments import ExperimentRequest
    from orchestrator.core.models import OrchestrateRequest

    world.engine.experiments.create(
        ExperimentRequest.model_validate(
            {
                "name": "pol",
                "variants": [{"name": "base"}, {"name": "prio", "policy": "priority_first"}],
            }
        )
    )
    seen = Counter()
    for i in range(20):
        body = {"goal": "g", "experiment": "pol", "plan": PLAN}
        snap = world.engine.submit(OrchestrateRequest.model_validate(body))
        variant = snap.experiment["variant"]
        seen[variant] += 1
        assert snap.policy == ("priority_first" if variant == "prio" else None)
        if i % 2 == 0:
            run = world.lifecycle.begin(snap.session_id, "s", snap.steps["s"].agent_id)
            assert isinstance(run, StepRun)
            world.lifecycle.succeed(run, StepResult("ok"))
    assert set(seen) == {"base", "prio"}
    result = world.engine.experiments.report("pol")
    assert sum(v.sessions for v in result.variants) == 20
    assert sum(v.ended for v in result.variants) == 10
    assert all(v.success.mean == 1.0 for v in result.variants if v.ended)
    world.engine.experiments.stop("pol")
    body = {"goal": "g", "experiment": "pol", "plan": PLAN}
    from orchestrator.core.errors import ExperimentChoiceError

    with pytest.raises(ExperimentChoiceError, match="is stopped"):
        world.engine.submit(OrchestrateRequest.model_validate(body))
    with pytest.raises(ExperimentChoiceError, match="does not exist"):
        world.engine.submit(OrchestrateRequest.model_validate({**body, "experiment": "zzz"}))


def test_the_api_creates_reports_and_stops_experiments_and_refuses_bad_ones(fake_redis):
    settings = Settings(api_tokens=f"ops:admin:{ADMIN},bob:user:bob-token-0123456789ab")
    client = create_app(
        settings, redis_client=fake_redis, dispatcher=RecordingDispatcher()
    ).test_client()
    admin = {"Authorization": f"Bearer {ADMIN}"}
    user = {"Authorization": "Bearer bob-token-0123456789ab"}
    body = {"name": "ab-1", "variants": [{"name": "a"}, {"name": "b", "policy": "learned"}]}
    assert client.post("/api/orchestrator/experiments", json=body, headers=user).status_code == 403
    created = client.post("/api/orchestrator/experiments", json=body, headers=admin)
    assert created.status_code == 201 and created.headers["Location"].endswith("/ab-1")
    assert client.post("/api/orchestrator/experiments", json=body, headers=admin).status_code == 409
    listed = client.get("/api/orchestrator/experiments", headers=user).get_json()
    assert listed["count"] == 1 and listed["experiments"][0]["status"] == "running"
    report_body = client.get("/api/orchestrator/experiments/ab-1", headers=user).get_json()
    assert [v["name"] for v in report_body["variants"]] == ["a", "b"]
    assert client.get("/api/orchestrator/experiments/nope", headers=user).status_code == 404
    stopped = client.post("/api/orchestrator/experiments/ab-1/stop", headers=admin)
    assert stopped.get_json()["status"] == "stopped"
    for bad, location in [
        ({"name": "x", "variants": [{"name": "only"}]}, "body.variants"),
        ({"name": "x", "variants": [{"name": "a"}, {"name": "a"}]}, "body.variants"),
        ({"name": "bad name", "variants": [{"name": "a"}, {"name": "b"}]}, "body.name"),
        (
            {"name": "x", "variants": [{"name": "a", "weight": 0}, {"name": "b"}]},
            "body.variants.0.weight",
        ),
        (
            {"name": "x", "variants": [{"name": "a"}, {"name": "b"}], "metrics": ["joy"]},
            "body.metrics.0",
        ),
    ]:
        response = client.post("/api/orchestrator/experiments", json=bad, headers=admin)
        assert response.status_code == 422, bad
        locations = [e["location"] for e in response.get_json()["error"]["details"]["errors"]]
        assert location in locations, (bad, locations)
    unknown = {"name": "y", "variants": [{"name": "a"}, {"name": "b", "policy": "nobody"}]}
    response = client.post("/api/orchestrator/experiments", json=unknown, headers=admin)
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "unknown_policy"


def test_constant_samples_are_never_significantly_different():
    """Summing 333 copies of 0.1 is not exactly 33.3: rounding must not make a verdict."""
    same = welch_t([0.1] * 50, [0.1] * 333)
    assert (same.difference, same.p_value) == (0.0, 1.0)
    exp = experiment(variants=[Variant(name="a"), Variant(name="b")], metrics=["costUsd"])
    outcomes = [SessionOutcome(variant="a", status="completed", cost_usd=0.001)] * 12 + [
        SessionOutcome(variant="b", status="completed", cost_usd=0.001)
    ] * 200
    [verdict] = report(exp, outcomes, expired=0).verdicts
    assert not verdict.significant and verdict.better is None and verdict.difference == 0
