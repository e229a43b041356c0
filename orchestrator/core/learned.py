"""The ``learned`` selection policy: a multi-armed bandit per capability that learns which agent
to route to from what its runs did (the agent metrics of orchestrator/core/agent_metrics.py).

Thompson sampling, not UCB: routing decisions are made by many processes at once with metrics a
second old, and Thompson's randomness spreads those concurrent decisions over the plausible
best arms where UCB would send every one of them to the same arm until the counts move; it also
needs no tuning of an exploration constant, and it is known to do at least as well as UCB on
Bernoulli rewards (Chapelle and Li, 2011).

Each agent is an arm of the bandit of the step's first capability. Its evidence is the runs in
the window (MEOWSTIK_LEARNED_WINDOW, the last hour by default, so an agent's past fades and a
recovered one is noticed): successes ``s`` and failures ``f`` (failed, retried, fell back, timed
out), for that capability. A decision draws ``theta ~ Beta(1 + s, 1 + f)`` per candidate and
scores it::

    score = theta - latency_weight * mean_run_s / (mean_run_s + latency_scale_s)
                  - cost_weight * cost_per_run / (cost_per_run + cost_scale_usd)

so a success is worth 1, and slowness or cost take off at most their weight. Candidates are
ranked by score. With no evidence for any candidate (cold start) it ranks like ``least_loaded``;
with probability ``exploration`` a decision ranks the candidates at random instead, a floor of
exploration that keeps every agent sampled. It never overloads an agent (routing reserves only
where there is room) and only ranks eligible agents (active, alive, circuit closed).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from decimal import Decimal

from orchestrator.core.policies import Candidate, Scored, SelectionPolicy, StepToRoute
from orchestrator.core.selection import least_loaded


@dataclass(frozen=True)
class LearnedWeights:
    latency_weight: float = 0.3
    latency_scale_s: float = 5.0
    cost_weight: float = 0.1
    cost_scale_usd: float = 0.01
    exploration: float = 0.05
    window: str = "1h"


class LearnedPolicy(SelectionPolicy):
    name = "learned"
    uses_metrics = True

    def __init__(self, weights: LearnedWeights | None = None, seed: int | None = None) -> None:
        self.weights = weights or LearnedWeights()
        self.metrics_window = self.weights.window
        self._random = random.Random(seed)
        self._lock = threading.Lock()  # random.Random is not to be shared unguarded

    def rank(self, candidates: list[Candidate], step: StepToRoute) -> list[Scored]:
        capability = step.capabilities[0] if step.capabilities else ""
        evidence = {c.id: self.evidence(c, capability) for c in candidates}
        if not any(s + f for s, f, _, _ in evidence.values()):
            ordered = least_loaded([c.agent for c in candidates])
            by_id = {c.id: c for c in candidates}
            return [Scored(by_id[a.id], 0.0, "cold start") for a in ordered]
        with self._lock:
            if self._random.random() < self.weights.exploration:
                shuffled = list(candidates)
                self._random.shuffle(shuffled)
                return [Scored(c, 0.0, "explore") for c in shuffled]
            draws = {
                c.id: self._random.betavariate(1 + evidence[c.id][0], 1 + evidence[c.id][1])
                for c in candidates
            }
        scored = []
        for c in candidates:
            _, _, mean_s, cost = evidence[c.id]
            score = draws[c.id] - self.penalty(mean_s, cost)
            scored.append(Scored(c, score, "exploit"))
        scored.sort(key=lambda item: (-item.score, item.candidate.load, item.id))
        return scored

    def evidence(self, candidate: Candidate, capability: str) -> tuple[int, int, float, float]:
        """(successes, failures, mean run seconds, cost per run in dollars) in the window."""
        m = candidate.metrics
        if m is None:
            return 0, 0, 0.0, 0.0
        counts = m.by_capability.get(capability, m)
        failures = counts.failed + counts.retried + counts.fallback + counts.timed_out
        cost = float(Decimal(m.cost_per_run_usd)) if m.cost_per_run_usd else 0.0
        return counts.succeeded, failures, m.run.mean_s or 0.0, cost

    def penalty(self, mean_s: float, cost_usd: float) -> float:
        w = self.weights
        slow = mean_s / (mean_s + w.latency_scale_s) if mean_s > 0 else 0.0
        costly = cost_usd / (cost_usd + w.cost_scale_usd) if cost_usd > 0 else 0.0
        return w.latency_weight * slow + w.cost_weight * costly
