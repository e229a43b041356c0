"""A/B experiments on the orchestrator's own strategies (pure): what an experiment is, how a
session is assigned a variant, and the report.

An experiment has variants with weights; each variant may set the session's selection
``policy``, ``planner`` or ``template``, or pin capabilities to agents (``agentOverrides``,
merged over the session's own). Sessions join it when they name it (``"experiment":
name`` on POST /orchestrate), or every session does while it runs with ``"match": "all"``. The
variant is decided by hashing the experiment's name with the session id (``assignBy:
"session"``) or the user id (``"user"``: a user always gets the same variant; sessions without
one fall back to their id), so the assignment is deterministic, needs no stored state, and is
uniform in proportion to the weights.

The report compares every variant with the first (the control) on the experiment's metrics:
``success`` (completed sessions among ended ones, Wilson interval, two-proportion z-test),
``durationS`` (completed sessions, start to end: mean with a t interval, p50, p95; Welch's
t-test) and ``costUsd`` (per ended session; Welch's t-test), at ``confidence`` (0.95 default).
A difference is significant when its p-value is below 1 - confidence; a verdict names the
better variant only then.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator

from orchestrator.core.camel import CamelModel
from orchestrator.core.models import AgentOverrides, RequestModel
from orchestrator.core.significance import (
    mean_interval,
    percentile,
    two_proportion_z,
    welch_t,
    wilson_interval,
)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
PolicyName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Metric = Literal["success", "durationS", "costUsd"]
ALL_METRICS: tuple[Metric, ...] = ("success", "durationS", "costUsd")


class Variant(RequestModel):
    name: Name
    weight: float = Field(default=1.0, gt=0, le=1_000_000)
    policy: PolicyName | None = None
    planner: Annotated[str, StringConstraints(max_length=64)] | None = None
    template: Annotated[str, StringConstraints(max_length=128)] | None = None
    agent_overrides: AgentOverrides | None = None


class ExperimentRequest(RequestModel):
    """Body of POST /api/orchestrator/experiments."""

    name: Name
    variants: list[Variant] = Field(min_length=2, max_length=10)
    assign_by: Literal["session", "user"] = "session"
    match: Literal["named", "all"] = "named"
    metrics: list[Metric] = Field(default_factory=lambda: list(ALL_METRICS), min_length=1)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)

    @field_validator("variants")
    @classmethod
    def _distinct(cls, variants: list[Variant]) -> list[Variant]:
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must differ")
        return variants

    @field_validator("metrics")
    @classmethod
    def _distinct_metrics(cls, metrics: list[Metric]) -> list[Metric]:
        return list(dict.fromkeys(metrics))


class Experiment(ExperimentRequest):
    status: Literal["running", "stopped"] = "running"
    created_at: str
    stopped_at: str | None = None


def assign(experiment: Experiment, session_id: str, user_id: str | None) -> Variant:
    """The variant of a session: the weights' share of a hash of the name and the unit."""
    unit = user_id if experiment.assign_by == "user" and user_id else session_id
    digest = hashlib.sha256(f"{experiment.name}\x00{unit}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(v.weight for v in experiment.variants)
    for variant in experiment.variants:
        if point < variant.weight:
            return variant
        point -= variant.weight
    return experiment.variants[-1]


class Interval(CamelModel):
    low: float
    high: float


class MetricSummary(CamelModel):
    n: int
    mean: float | None = None
    interval: Interval | None = None
    p50: float | None = None
    p95: float | None = None


class VariantReport(CamelModel):
    name: str
    sessions: int  # assigned
    running: int
    ended: int
    success: MetricSummary | None = None  # mean: the success rate
    duration_s: MetricSummary | None = None
    cost_usd: MetricSummary | None = None


class Verdict(CamelModel):
    metric: str
    control: str
    variant: str
    difference: float  # variant minus control (a rate, seconds, or dollars)
    p_value: float | None
    significant: bool
    test: str
    better: str | None = None  # the better of the two when the difference is significant


class ExperimentReport(CamelModel):
    experiment: Experiment
    variants: list[VariantReport]
    verdicts: list[Verdict]
    expired: int = 0  # assigned sessions whose records retention removed


class SessionOutcome(CamelModel):
    variant: str
    status: str
    duration_s: float | None = None
    cost_usd: float | None = None


def report(
    experiment: Experiment, outcomes: list[SessionOutcome], expired: int
) -> ExperimentReport:
    confidence = experiment.confidence
    by_variant: dict[str, list[SessionOutcome]] = {v.name: [] for v in experiment.variants}
    for outcome in outcomes:
        by_variant.setdefault(outcome.variant, []).append(outcome)
    reports, samples = [], {}
    for variant in experiment.variants:
        rows = by_variant[variant.name]
        ended = [r for r in rows if r.status in ("completed", "failed", "cancelled")]
        ok = [r for r in ended if r.status == "completed"]
        durations = [r.duration_s for r in ok if r.duration_s is not None]
        costs = [r.cost_usd or 0.0 for r in ended]
        samples[variant.name] = (len(ok), len(ended), durations, costs)
        wilson = wilson_interval(len(ok), len(ended), confidence)
        reports.append(
            VariantReport(
                name=variant.name,
                sessions=len(rows),
                running=len(rows) - len(ended),
                ended=len(ended),
                success=MetricSummary(
                    n=len(ended),
                    mean=len(ok) / len(ended) if ended else None,
                    interval=Interval(low=wilson[0], high=wilson[1]) if wilson else None,
                )
                if "success" in experiment.metrics
                else None,
                duration_s=_summary(durations, confidence)
                if "durationS" in experiment.metrics
                else None,
                cost_usd=_summary(costs, confidence) if "costUsd" in experiment.metrics else None,
            )
        )
    verdicts = []
    control = experiment.variants[0].name
    alpha = 1 - confidence
    for variant in experiment.variants[1:]:
        c_ok, c_n, c_dur, c_cost = samples[control]
        v_ok, v_n, v_dur, v_cost = samples[variant.name]
        for metric in experiment.metrics:
            if metric == "success":
                result = two_proportion_z(c_ok, c_n, v_ok, v_n)
                higher_is_better = True
            elif metric == "durationS":
                result = welch_t(c_dur, v_dur)
                higher_is_better = False
            else:
                result = welch_t(c_cost, v_cost)
                higher_is_better = False
            significant = result.p_value is not None and result.p_value < alpha
            better = None
            if significant and result.difference != 0:
                variant_wins = (result.difference > 0) == higher_is_better
                better = variant.name if variant_wins else control
            verdicts.append(
                Verdict(
                    metric=metric,
                    control=control,
                    variant=variant.name,
                    difference=round(result.difference, 6),
                    p_value=None if result.p_value is None else round(result.p_value, 6),
                    significant=significant,
                    test=result.test,
                    better=better,
                )
            )
    return ExperimentReport(
        experiment=experiment, variants=reports, verdicts=verdicts, expired=expired
    )


def _summary(values: list[float], confidence: float) -> MetricSummary:
    """Mean with its t interval, p50 and p95 of a duration or a cost. Neither can be negative,
    so the interval's low end is cut at 0 (with few sessions a t interval reaches below)."""
    interval = mean_interval(values, confidence)
    return MetricSummary(
        n=len(values),
        mean=sum(values) / len(values) if values else None,
        interval=Interval(low=max(0.0, interval[0]), high=interval[1]) if interval else None,
        p50=percentile(values, 0.5),
        p95=percentile(values, 0.95),
    )


def valid_name(name: str) -> bool:
    return re.match(NAME_PATTERN, name) is not None


def experiment_document(experiment: Experiment) -> dict[str, Any]:
    return experiment.model_dump(mode="json", by_alias=True)
