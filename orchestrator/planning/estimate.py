"""Duration estimates and the critical path of a plan graph. Pure: no I/O.

A step's estimate is its own ``estimatedDurationS`` when the plan gives one, else the measured
mean duration of steps with the same (first) capability, else unknown. Unknown estimates count as
zero seconds, and the preview lists them, so the figure is a lower bound. The critical path is
the chain of dependent steps with the largest total estimate; among chains of equal time the one
with more steps wins, so a plan with no estimates at all still shows its longest chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.core.graph import PlanGraph

SOURCE_PLAN = "plan"
SOURCE_MEASURED = "measured"
SOURCE_UNKNOWN = "unknown"


@dataclass(frozen=True)
class StepEstimate:
    estimate_s: float | None
    source: str  # plan | measured | unknown
    earliest_start_s: float
    earliest_finish_s: float
    slack_s: float  # how much later it could finish without delaying the whole plan


@dataclass(frozen=True)
class PlanEstimate:
    critical_path: list[str]
    duration_s: float
    steps: dict[str, StepEstimate]

    @property
    def unknown(self) -> list[str]:
        return [step_id for step_id, e in self.steps.items() if e.source == SOURCE_UNKNOWN]


def step_estimates(
    graph: PlanGraph, measured_s: Mapping[str, float]
) -> dict[str, tuple[float | None, str]]:
    """(seconds or None, source) per step: the plan's own figure, else the measured mean of its
    first capability (``measured_s`` maps capability -> mean seconds)."""
    out: dict[str, tuple[float | None, str]] = {}
    for step_id, node in graph.nodes.items():
        own = node.step.estimated_duration_s
        capability = node.step.required_capabilities[0]
        if own is not None:
            out[step_id] = (float(own), SOURCE_PLAN)
        elif capability in measured_s:
            out[step_id] = (float(measured_s[capability]), SOURCE_MEASURED)
        else:
            out[step_id] = (None, SOURCE_UNKNOWN)
    return out


def estimate_plan(graph: PlanGraph, measured_s: Mapping[str, float]) -> PlanEstimate:
    """Earliest start and finish of every step (unbounded parallelism), the critical path and
    the plan's estimated duration."""
    estimates = step_estimates(graph, measured_s)
    order = graph.topological_order()
    start: dict[str, float] = {}
    finish: dict[str, float] = {}
    hops: dict[str, int] = {}
    via: dict[str, str | None] = {}
    for step_id in order:
        deps = graph.nodes[step_id].depends_on
        best = max(deps, key=lambda d: (finish[d], hops[d]), default=None)
        start[step_id] = finish[best] if best else 0.0
        hops[step_id] = hops[best] + 1 if best else 1
        via[step_id] = best
        finish[step_id] = start[step_id] + (estimates[step_id][0] or 0.0)
    end = max(order, key=lambda s: (finish[s], hops[s]))
    path: list[str] = []
    cursor: str | None = end
    while cursor is not None:
        path.append(cursor)
        cursor = via[cursor]
    path.reverse()
    total = finish[end]
    latest_finish = _latest_finishes(graph, order, estimates, total)
    steps = {
        step_id: StepEstimate(
            estimate_s=estimates[step_id][0],
            source=estimates[step_id][1],
            earliest_start_s=round(start[step_id], 3),
            earliest_finish_s=round(finish[step_id], 3),
            slack_s=round(latest_finish[step_id] - finish[step_id], 3),
        )
        for step_id in order
    }
    return PlanEstimate(path, round(total, 3), steps)


def _latest_finishes(
    graph: PlanGraph,
    order: list[str],
    estimates: Mapping[str, tuple[float | None, str]],
    total: float,
) -> dict[str, float]:
    latest: dict[str, float] = {}
    for step_id in reversed(order):
        children = graph.nodes[step_id].children
        latest[step_id] = min(
            (latest[c] - (estimates[c][0] or 0.0) for c in children), default=total
        )
    return latest
