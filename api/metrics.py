"""Prometheus metrics read from Redis at scrape time.

The numbers live in Redis (the Lua scripts count steps and durations, the registry holds agents,
the broker holds queues, index sets hold sessions by status) so that every API process answers
the same /metrics. A collector, rather than prometheus_client's in-process counters, turns one
scrape into one read of orchestrator/store/metrics.py's ``MetricsReader`` (a registry read plus
one pipeline of hash, list and sorted-set reads); this module only renders what it returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from orchestrator.core.agent_metrics import OUTCOMES
from orchestrator.core.models import RegisteredAgent
from orchestrator.core.statuses import AgentStatus
from orchestrator.store.metrics import MetricsReader

DURATION_BOUNDS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
"""The step duration buckets of orchestrator/store/lua/_slots.lua (DURATION_BOUNDS_S). Every one
is exposed, even when empty, so that each capability's histogram has the same buckets."""

INFINITY = float("inf")


class RedisMetricsCollector(Collector):
    """A prometheus_client collector whose ``collect()`` reads the orchestrator's Redis.

    Args:
        reader: reads the numbers from Redis.
        clock: seconds since the epoch; decides which agents are offline (heartbeat expired).
    """

    def __init__(self, reader: MetricsReader, *, clock: Callable[[], float] = time.time) -> None:
        self._reader = reader
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        reading = self._reader.read(int(self._clock() * 1000))
        yield steps_family(reading.step_counts)
        yield step_duration_family(reading.step_durations)
        yield queue_family(reading.queue_messages)
        yield from agent_families(reading.agents)
        yield from agent_run_families(reading.agent_metrics)
        yield sessions_family(reading.sessions)
        yield from cost_families(reading.cost_totals)


def metrics_response(
    reader: MetricsReader, clock: Callable[[], float] = time.time
) -> tuple[bytes, str]:
    """The Prometheus text exposition of the orchestrator's metrics, and its content type;
    ``clock``: the API's (Redis's time, which the workers' heartbeats are on).

    A fresh registry holds only this collector, so the answer carries no process metrics of
    whichever API process happened to serve the scrape.
    """
    registry = CollectorRegistry()
    registry.register(RedisMetricsCollector(reader, clock=clock))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def steps_family(step_counts: dict[str, str]) -> CounterMetricFamily:
    """meowstik_steps_total{capability,outcome} from the "<capability>|<outcome>" hash."""
    family = CounterMetricFamily(
        "meowstik_steps",
        "Steps by first capability and outcome; retried and fallback count requeues.",
        labels=["capability", "outcome"],
    )
    for field, count in sorted(step_counts.items()):
        capability, _, outcome = field.rpartition("|")
        family.add_metric([capability, outcome], int(count))
    return family


def step_duration_family(step_durations: dict[str, str]) -> HistogramMetricFamily:
    """meowstik_step_duration_seconds{capability}: the Lua scripts keep one count per bucket,
    Prometheus wants cumulative buckets, so they are summed here in bound order."""
    family = HistogramMetricFamily(
        "meowstik_step_duration_seconds",
        "Time from a completed or failed step's start to its end.",
        labels=["capability"],
    )
    counts, sums_ms = bucket_counts(step_durations)
    for capability in sorted(counts):
        family.add_metric(
            [capability], cumulative(counts[capability]), sums_ms.get(capability, 0) / 1000
        )
    return family


def cumulative(per_bound: dict[float, int]) -> list[tuple[str, int]]:
    """Prometheus' buckets from per-bucket counts: every bound of DURATION_BOUNDS_S (and any
    other found) and +Inf, each counting the observations up to it."""
    buckets, total = [], 0
    for bound in sorted(set(DURATION_BOUNDS_S) | set(per_bound) | {INFINITY}):
        total += per_bound.get(bound, 0)
        buckets.append((floatToGoString(bound), total))
    return buckets


def bucket_counts(
    step_durations: dict[str, str],
) -> tuple[dict[str, dict[float, int]], dict[str, int]]:
    """Split the duration hash into per-capability {upper bound s: count} and sum (ms).

    Bounds are parsed as numbers ("1", "2.5", "+Inf"), so the text Lua's tostring gives them
    does not matter. The count is the sum of the buckets."""
    counts: dict[str, dict[float, int]] = {}
    sums_ms: dict[str, int] = {}
    for field, value in step_durations.items():
        capability, _, name = field.rpartition("|")
        if name.startswith("le="):
            bound = float(name.removeprefix("le="))
            per_bound = counts.setdefault(capability, {})
            per_bound[bound] = per_bound.get(bound, 0) + int(value)
        elif name == "sum_ms":
            sums_ms[capability] = int(value)
            counts.setdefault(capability, {})
    return counts, sums_ms


def queue_family(queue_messages: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "meowstik_queue_messages",
        "Messages waiting on each Celery queue of the registered agents.",
        labels=["queue"],
    )
    for queue, depth in queue_messages.items():
        family.add_metric([queue], depth)
    return family


def agent_families(agents: list[RegisteredAgent]) -> Iterator[GaugeMetricFamily]:
    """Load, capacity, liveness and circuit breaker of every registered agent."""
    load = GaugeMetricFamily(
        "meowstik_agent_load", "Steps an agent runs now.", labels=["agent", "type"]
    )
    capacity = GaugeMetricFamily(
        "meowstik_agent_capacity", "Steps an agent may run at once.", labels=["agent", "type"]
    )
    up = GaugeMetricFamily(
        "meowstik_agent_up",
        "1 when the agent is active and its worker alive, else 0; status says why.",
        labels=["agent", "status"],
    )
    circuit = GaugeMetricFamily(
        "meowstik_agent_circuit_open",
        "1 while the agent's circuit breaker is open after repeated failures.",
        labels=["agent"],
    )
    for agent in agents:
        load.add_metric([agent.id, agent.type], agent.current_load)
        capacity.add_metric([agent.id, agent.type], agent.max_load)
        up.add_metric([agent.id, agent.status.value], int(agent.status == AgentStatus.ACTIVE))
        circuit.add_metric([agent.id], int(agent.circuit.state == "open"))
    yield from (load, capacity, up, circuit)


def agent_run_families(agent_metrics: dict[str, dict[str, str]]) -> Iterator[Metric]:
    """meowstik_agent_runs_total{agent,outcome} (every registered agent, every outcome) and the
    run-time and queue-wait histograms meowstik_agent_run_seconds{agent} and
    meowstik_agent_queue_wait_seconds{agent} (agents with a run), from each agent's all-time
    counters (Keys.agent_metrics: "<outcome>", "run|le=<s>", "run|sum_ms", "wait|..."). Error
    types and capabilities are left out: they would multiply the series."""
    runs = CounterMetricFamily(
        "meowstik_agent_runs",
        "Step runs by agent and outcome: started (claimed), then succeeded, failed (for good), "
        "retried (on the same agent), fallback (handed to another) or timed_out (lease lapsed).",
        labels=["agent", "outcome"],
    )
    run_seconds = HistogramMetricFamily(
        "meowstik_agent_run_seconds",
        "Time from a run's start to its end (succeeded, failed, retried or fallback), by agent.",
        labels=["agent"],
    )
    wait_seconds = HistogramMetricFamily(
        "meowstik_agent_queue_wait_seconds",
        "Time a step waited in the queue before an agent claimed it, by agent.",
        labels=["agent"],
    )
    for agent_id, counters in sorted(agent_metrics.items()):
        for outcome in OUTCOMES:
            runs.add_metric([agent_id, outcome], int(counters.get(outcome, 0)))
        # only the histogram fields: an error type (failed|<type>) is not a bound
        histograms = {f: v for f, v in counters.items() if f.startswith(("run|", "wait|"))}
        counts, sums_ms = bucket_counts(histograms)
        for name, family in (("run", run_seconds), ("wait", wait_seconds)):
            if name in counts:
                family.add_metric([agent_id], cumulative(counts[name]), sums_ms.get(name, 0) / 1000)
    yield from (runs, run_seconds, wait_seconds)


def sessions_family(sessions: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "meowstik_sessions",
        "Sessions in each status (finished ones until their retention expires).",
        labels=["status"],
    )
    for status, count in sessions.items():
        family.add_metric([status], count)
    return family


def cost_families(totals: dict[str, str]) -> Iterator[Metric]:
    """meowstik_llm_tokens_total{agent,model,kind}, meowstik_cost_usd_total{agent,model} and
    meowstik_step_cpu_seconds_total{agent} from the all-time cost counters (each model call
    counted once, as it was recorded: orchestrator/store/lua/record_call.lua)."""
    tokens = CounterMetricFamily(
        "meowstik_llm_tokens",
        "Model tokens by agent, model and kind (prompt, completion); replayed calls count once.",
        labels=["agent", "model", "kind"],
    )
    money = CounterMetricFamily(
        "meowstik_cost_usd",
        "Money spent on model calls by agent and model, from the price table (calls of models "
        "without a price are not in it).",
        labels=["agent", "model"],
    )
    cpu = CounterMetricFamily(
        "meowstik_step_cpu_seconds",
        "CPU time of step runs by agent (the worker thread that ran each step).",
        labels=["agent"],
    )
    pairs: set[tuple[str, str]] = set()
    for field in totals:
        kind, *rest = field.split("|")
        if kind == "am" and len(rest) == 3:
            pairs.add((rest[0], rest[1]))
        elif kind == "a" and rest[1:] == ["cpu_us"]:
            cpu.add_metric([rest[0]], int(totals[field]) / 1_000_000)
    for agent, model in sorted(pairs):
        prefix = f"am|{agent}|{model}|"
        for kind in ("prompt", "completion"):
            tokens.add_metric([agent, model, kind], int(totals.get(prefix + kind, 0)))
        money.add_metric([agent, model], int(totals.get(prefix + "pico", 0)) / 10**12)
    yield tokens
    yield money
    yield cpu
