"""The numbers /metrics, the queue views and /healthz read from Redis, as plain data.

The Lua scripts count steps and durations (and each agent's runs), the registry holds agents, the
broker holds queues and index sets hold sessions by status; ``MetricsReader`` reads them, by name
(LLEN, ZCARD, HGETALL, never a scan of keys), and api/metrics.py renders them for Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import redis

from orchestrator.core.ids import capability_queue
from orchestrator.core.models import RegisteredAgent
from orchestrator.core.statuses import SessionStatus
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.metrics_fold import MetricsFold
from orchestrator.store.scripts import text


@dataclass(frozen=True)
class MetricsReading:
    """Everything one scrape read from Redis, decoded, before it becomes metric families."""

    step_counts: dict[str, str]
    step_durations: dict[str, str]
    agents: list[RegisteredAgent]
    queue_messages: dict[str, int]
    sessions: dict[str, int]
    cost_totals: dict[str, str] = field(default_factory=dict)  # Keys.cost_totals
    # registered agent id -> its all-time counters (Keys.agent_metrics; {} before any run)
    agent_metrics: dict[str, dict[str, str]] = field(default_factory=dict)


@translates_redis_errors
class MetricsReader:
    """Reads for monitoring: a whole scrape, queue depths, and whether Redis answers.

    Args:
        client: the Redis that holds the orchestrator's keys and is the Celery broker.
        keys: key names under the deployment's prefix.
        registry: the agent registry on the same Redis.
    """

    def __init__(self, client: redis.Redis, keys: Keys, registry: AgentRegistry) -> None:
        self._client = client
        self._keys = keys
        self._registry = registry
        self._fold = MetricsFold(client, keys)

    def read(self, now_ms: int) -> MetricsReading:
        """Read the registry (``now_ms`` decides which agents are offline), then every other
        number in one non-transactional pipeline (one HGETALL per registered agent for its
        all-time run counters), after folding the pending metric facts."""
        self._fold.before_read()
        agents = self._registry.list(now_ms)
        queues = known_queues(agents)
        statuses = [status.value for status in SessionStatus]
        pipe = self._client.pipeline(transaction=False)
        pipe.hgetall(self._keys.step_counts)
        pipe.hgetall(self._keys.step_durations)
        pipe.hgetall(self._keys.cost_totals)
        for queue in queues:
            pipe.llen(self._keys.broker(queue))
        for status in statuses:
            pipe.zcard(self._keys.sessions_by_status(status))
        for agent in agents:
            pipe.hgetall(self._keys.agent_metrics(agent.id))
        replies = pipe.execute()
        depths = replies[3 : 3 + len(queues)]
        cards = replies[3 + len(queues) : 3 + len(queues) + len(statuses)]
        runs = replies[3 + len(queues) + len(statuses) :]
        return MetricsReading(
            step_counts=decode_hash(replies[0]),
            step_durations=decode_hash(replies[1]),
            agents=agents,
            queue_messages={queue: int(depth) for queue, depth in zip(queues, depths, strict=True)},
            sessions={status: int(card) for status, card in zip(statuses, cards, strict=True)},
            cost_totals=decode_hash(replies[2]),
            agent_metrics={
                agent.id: decode_hash(raw) for agent, raw in zip(agents, runs, strict=True)
            },
        )

    def queue_lengths(self, queues: Sequence[str]) -> list[int]:
        """Messages waiting in each Celery queue, in the order given, in one pipeline of LLENs
        (kombu's Redis transport keeps each queue as a list, under the broker prefix:
        ``Keys.broker``)."""
        pipe = self._client.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(self._keys.broker(queue))
        return [int(depth) for depth in pipe.execute()]

    def ping(self) -> None:
        """Check that Redis answers. Raises StoreUnavailableError, the redis-py error chained
        as its cause, when it does not."""
        self._client.ping()


def known_queues(agents: Iterable[RegisteredAgent]) -> list[str]:
    """The Celery queues the registered agents consume: each agent's own queue (agent.<id> or
    executor.remote) and cap.<capability> for each capability. Only these plain lists are
    counted, not kombu's priority sub-lists."""
    queues: set[str] = set()
    for agent in agents:
        if agent.queue:
            queues.add(agent.queue)
        queues.update(capability_queue(name) for name in agent.capability_names)
    return sorted(queues)


def decode_hash(raw: dict) -> dict[str, str]:
    return {text(field): text(value) for field, value in raw.items()}
