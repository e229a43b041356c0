"""Agents' metrics across sessions, read from the counters the lifecycle scripts keep
(_slots.lua ``count_agent``, folded first: metrics_fold.py) and the cost counters
(record_call.lua, complete_step.lua), in one pipeline per read. The view is
orchestrator/core/agent_metrics.py's."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from orchestrator.core.agent_metrics import (
    AgentMetrics,
    Window,
    agent_metrics,
    merge,
    window_buckets,
)
from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.metrics_fold import MetricsFold
from orchestrator.store.scripts import text
from orchestrator.store.turns import MS_PER_HOUR

WINDOW_HOURS = {"1h": 2, "24h": 25}
"""The clock hours of cost counters a window touches (the current one and those before)."""


@translates_redis_errors
class AgentMetricsStore:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client, self._keys = client, keys
        self._fold = MetricsFold(client, keys)

    def read(self, agent_id: str, window: Window, now_ms: int) -> AgentMetrics:
        return self.read_many([agent_id], window, now_ms)[agent_id]

    def read_many(
        self, agent_ids: Sequence[str], window: Window, now_ms: int
    ) -> dict[str, AgentMetrics]:
        """Several agents' metrics over one window, in one round trip after the fold."""
        self._fold.before_read()
        k = self._keys
        pipe = self._client.pipeline(transaction=False)
        buckets = [] if window == "all" else window_buckets(window, now_ms)
        hours = [] if window == "all" else self._hours(window, now_ms)
        for agent_id in agent_ids:
            if window == "all":
                pipe.hgetall(k.agent_metrics(agent_id))
            else:
                for bucket in buckets:
                    pipe.hgetall(k.agent_metrics_window(agent_id, bucket))
        if window == "all":
            pipe.hgetall(k.cost_totals)
        else:
            for hour in hours:
                pipe.hgetall(k.cost_hour(hour))
        replies = [_ints(raw) for raw in pipe.execute()]
        per_agent = 1 if window == "all" else len(buckets)
        costs = merge(replies[len(agent_ids) * per_agent :])
        views = {}
        for index, agent_id in enumerate(agent_ids):
            counters = merge(replies[index * per_agent : (index + 1) * per_agent])
            views[agent_id] = agent_metrics(
                agent_id, window, counters, _cost(costs, agent_id, window)
            )
        return views

    def _hours(self, window: str, now_ms: int) -> list[int]:
        current = now_ms // MS_PER_HOUR
        return [current - i for i in range(WINDOW_HOURS[window])]


def _ints(raw: dict) -> dict[str, int]:
    return {text(name): int(value) for name, value in raw.items()}


def _cost(costs: dict[str, int], agent_id: str, window: str) -> int | None:
    """Pico-dollars counted to the agent: all-time from the totals' "am|<agent>|<model>|pico",
    a window from the hourly "a|<agent>|pico"; None when nothing it ran had a price."""
    if window == "all":
        prefix = f"am|{agent_id}|"
        fields = [n for n in costs if n.startswith(prefix) and n.endswith("|pico")]
    else:
        fields = [f"a|{agent_id}|pico"] if f"a|{agent_id}|pico" in costs else []
    return sum(costs[n] for n in fields) if fields else None
