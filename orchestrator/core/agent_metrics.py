"""How agents do across sessions (pure): the counters the lifecycle scripts keep per agent
(``Keys.agent_metrics``, five-minute and hourly buckets in ``Keys.agent_metrics_window``) as the
figures GET /api/orchestrator/agents/<id>/metrics, the dashboard, the CLI and routing policies
read.

Outcomes of a step run on an agent: ``started`` (claimed), ``succeeded``, ``failed`` (the run
gave up for good; by error type too), ``retried`` (failed, tried again on the same agent),
``fallback`` (failed, handed to another agent), ``timedOut`` (its lease ran out: the worker died
or hung). ``successRate`` is succeeded over the runs that ended in one of those five ways, so a
retry counts against the agent that needed it. Latencies come from histograms with the bounds of
the step-duration metric; quantiles interpolate inside a bucket as Prometheus'
histogram_quantile does (an estimate, never finer than the buckets).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from orchestrator.core.camel import CamelModel
from orchestrator.core.models import RegisteredAgent
from orchestrator.core.prices import usd

Window = Literal["1h", "24h", "all"]
WINDOWS: tuple[Window, ...] = ("1h", "24h", "all")
BOUNDS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
"""The histogram bounds, as _slots.lua's DURATION_BOUNDS_S."""
OUTCOMES = ("started", "succeeded", "failed", "retried", "fallback", "timed_out")
ENDED = ("succeeded", "failed", "retried", "fallback", "timed_out")
BUCKET_MS = {"m5": 300_000, "h1": 3_600_000}
WINDOW_BUCKETS = {"1h": ("m5", 12), "24h": ("h1", 24)}
"""A window is the current bucket and those before it: twelve of five minutes, 24 of an hour."""


class Latency(CamelModel):
    count: int = 0
    mean_s: float | None = None
    p50_s: float | None = None
    p95_s: float | None = None


class OutcomeCounts(CamelModel):
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    fallback: int = 0
    timed_out: int = 0
    success_rate: float | None = None  # succeeded / runs that ended; None before any ended


class AgentMetrics(OutcomeCounts):
    """GET /api/orchestrator/agents/<id>/metrics?window=1h|24h|all."""

    agent_id: str
    window: Window
    failed_by_type: dict[str, int] = Field(default_factory=dict)
    run: Latency = Field(default_factory=Latency)
    queue_wait: Latency = Field(default_factory=Latency)
    cost_usd: str | None = None  # model calls and agent reports counted to the agent
    cost_per_run_usd: str | None = None
    by_capability: dict[str, OutcomeCounts] = Field(default_factory=dict)


class AgentDetail(RegisteredAgent):
    """GET /api/orchestrator/agents/<id>: the agent and how it did (each window; the windows
    without byCapability, which GET .../metrics?window=all has)."""

    metrics: dict[Window, AgentMetrics] = Field(default_factory=dict)


def window_buckets(window: str, now_ms: int) -> list[str]:
    """The bucket names a window reads, newest first ("m5-<n>" or "h1-<n>")."""
    kind, count = WINDOW_BUCKETS[window]
    current = now_ms // BUCKET_MS[kind]
    return [f"{kind}-{current - i}" for i in range(count)]


def merge(hashes: list[dict[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for counters in hashes:
        for name, value in counters.items():
            merged[name] = merged.get(name, 0) + value
    return merged


def outcome_counts(counters: dict[str, int], prefix: str = "") -> OutcomeCounts:
    values = {name: counters.get(prefix + name, 0) for name in OUTCOMES}
    ended = sum(values[name] for name in ENDED)
    return OutcomeCounts(
        **values,
        success_rate=round(values["succeeded"] / ended, 4) if ended else None,
    )


def latency(counters: dict[str, int], name: str) -> Latency:
    buckets = [(bound, counters.get(f"{name}|le={_bound_text(bound)}", 0)) for bound in BOUNDS_S]
    overflow = counters.get(f"{name}|le=+Inf", 0)
    count = sum(n for _, n in buckets) + overflow
    if count == 0:
        return Latency()
    total_ms = counters.get(f"{name}|sum_ms", 0)
    return Latency(
        count=count,
        mean_s=round(total_ms / count / 1000, 4),
        p50_s=quantile(buckets, overflow, 0.5),
        p95_s=quantile(buckets, overflow, 0.95),
    )


def quantile(buckets: list[tuple[float, int]], overflow: int, q: float) -> float:
    """Prometheus' histogram_quantile over (upper bound, count) buckets: linear inside the
    bucket the rank falls in; in the +Inf bucket, the largest finite bound."""
    count = sum(n for _, n in buckets) + overflow
    rank = q * count
    seen, lower = 0, 0.0
    for bound, n in buckets:
        if n and seen + n >= rank:
            return round(lower + (bound - lower) * (rank - seen) / n, 4)
        seen += n
        lower = bound
    return float(buckets[-1][0])


def agent_metrics(
    agent_id: str,
    window: Window,
    counters: dict[str, int],
    cost_pico: int | None,
) -> AgentMetrics:
    """The view of one window's counters (``cost_pico``: what the agent's runs cost in it)."""
    counts = outcome_counts(counters)
    failed_by_type = {
        name.removeprefix("failed|"): value
        for name, value in sorted(counters.items())
        if name.startswith("failed|")
    }
    capabilities = sorted({name.split("|")[1] for name in counters if name.startswith("c|")})
    runs = sum(getattr(counts, name) for name in ENDED)
    return AgentMetrics(
        agent_id=agent_id,
        window=window,
        **counts.model_dump(),
        failed_by_type=failed_by_type,
        run=latency(counters, "run"),
        queue_wait=latency(counters, "wait"),
        cost_usd=usd(cost_pico) if cost_pico is not None else None,
        cost_per_run_usd=usd(cost_pico // runs) if cost_pico is not None and runs else None,
        by_capability={cap: outcome_counts(counters, f"c|{cap}|") for cap in capabilities},
    )


def _bound_text(bound: float) -> str:
    """A bound as Lua's tostring writes it in the field names (1 -> "1", 0.5 -> "0.5")."""
    return str(int(bound)) if float(bound).is_integer() else repr(bound)
