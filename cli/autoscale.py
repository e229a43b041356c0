"""`meowstik up --autoscale`: more worker processes for an agent while its backlog stays deep,
fewer once they idle.

An agent's capacity is its ``maxLoad`` slots, wherever its worker processes run, so a second
process for the same agent id would add nothing. The autoscaler adds **replicas** instead: a
`meowstik worker --replica N` process registering the agent under ``<id>.rN`` with its own queue
and ``maxLoad`` slots (``metadata.replicaOf`` names the original). The router then spreads steps
over the agent and its replicas by load, and waiting steps are handed to a new replica at its
first heartbeat, as to any agent that comes online.

Every ``MEOWSTIK_AUTOSCALE_INTERVAL_S`` it reads each hosted agent's backlog: the steps parked
for capacity on its capabilities plus the messages not yet taken from its queues. The rule
(:func:`decide`, pure):

- backlog >= ``MEOWSTIK_AUTOSCALE_BACKLOG`` for ``MEOWSTIK_AUTOSCALE_UP_AFTER_S``, fewer than
  ``MEOWSTIK_AUTOSCALE_MAX_WORKERS`` processes and no replica still starting: add one.
- backlog 0 for ``MEOWSTIK_AUTOSCALE_IDLE_S`` and a replica running: drain the newest (the
  router sends it nothing new); at a later look, once its load is 0, stop its process (Celery's
  warm shutdown) and deregister it. A backlog that comes back during the drain reactivates it.
- in between: nothing; both clocks start over.

Each decision is printed by `up` and written to ``<prefix>:autoscaler`` in Redis, which
``GET /api/orchestrator/autoscaler`` and the dashboard's agents page show.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import redis

from cli.processes import ManagedProcess
from cli.supervisor import Supervisor
from orchestrator.core.errors import StoreUnavailableError
from orchestrator.core.ids import agent_queue, capability_queue
from orchestrator.core.logentry import iso_from_ms
from orchestrator.core.models import AgentDefinition, AgentUpdate, RegisteredAgent
from orchestrator.core.statuses import AgentStatus
from orchestrator.settings import Settings
from orchestrator.store.agents import AgentNotFoundError, AgentRegistry
from orchestrator.store.connection import client_for
from orchestrator.store.keys import Keys
from orchestrator.store.redis_clock import RedisClock
from workers.agents.base import replica_id

STATUS_TTL_FACTOR = 5  # the status record outlives a few missed looks, then disappears


class Action(StrEnum):
    ADD = "add"
    DRAIN = "drain"
    STOP = "stop"
    REACTIVATE = "reactivate"


@dataclass(frozen=True)
class Limits:
    max_workers: int
    backlog: int
    up_after_s: float
    idle_s: float

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            settings.autoscale_max_workers,
            settings.autoscale_backlog,
            settings.autoscale_up_after_s,
            settings.autoscale_idle_s,
        )


@dataclass
class Pool:
    """One hosted agent and the replica numbers running for it (1, the agent itself, always)."""

    agent: AgentDefinition
    replicas: dict[int, ManagedProcess] = field(default_factory=dict)
    deep_since: float | None = None
    idle_since: float | None = None
    draining: int | None = None
    starting: int | None = None  # added, not yet active in the registry
    backlog: int = 0
    last_action: str = ""
    last_action_at_ms: int | None = None

    @property
    def workers(self) -> int:
        return 1 + len(self.replicas)

    def next_number(self) -> int:
        return max(self.replicas, default=1) + 1


def decide(
    pool: Pool, backlog: int, now: float, limits: Limits, draining_load: int
) -> Action | None:
    """The autoscaler's rule for one agent (see the module docstring); updates pool's clocks."""
    pool.backlog = backlog
    if backlog >= limits.backlog:
        pool.idle_since = None
        if pool.draining is not None:
            return Action.REACTIVATE
        pool.deep_since = now if pool.deep_since is None else pool.deep_since
        if (
            now - pool.deep_since >= limits.up_after_s
            and pool.workers < limits.max_workers
            and pool.starting is None
        ):
            pool.deep_since = now  # the next replica needs its own deep stretch
            return Action.ADD
        return None
    pool.deep_since = None
    if backlog > 0:
        pool.idle_since = None
        return None
    if pool.draining is not None:
        return Action.STOP if draining_load == 0 else None
    pool.idle_since = now if pool.idle_since is None else pool.idle_since
    if pool.replicas and now - pool.idle_since >= limits.idle_s:
        pool.idle_since = now  # the next removal waits its own idle stretch
        return Action.DRAIN
    return None


class Autoscaler:
    """Applies :func:`decide` to the agents `up` hosts, starting and stopping replica workers
    through the supervisor."""

    def __init__(
        self,
        supervisor: Supervisor,
        settings: Settings,
        agents: list[AgentDefinition],
        replica_child: Callable[[AgentDefinition, int], ManagedProcess],
        *,
        client: redis.Redis | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self.supervisor = supervisor
        self.settings = settings
        self.limits = Limits.of(settings)
        self.pools = {agent.id: Pool(agent) for agent in agents}
        self.replica_child = replica_child
        self.client = client or client_for(settings, socket_timeout=5, socket_connect_timeout=2)
        self.keys = Keys(settings.key_prefix)
        self.registry = AgentRegistry(self.client, self.keys)
        self.clock = clock
        # the time the agents' heartbeats are compared with: Redis's, as the workers write them
        self.wall_clock = wall_clock or RedisClock(self.client)
        self.retiring: dict[str, ManagedProcess] = {}  # replica agent id -> stopping process
        self._redis_down = False

    def start(self) -> None:
        """Forget replicas a previous `up` left registered and offline."""
        try:
            for agent in self.registry.list(self._now_ms()):
                replica_of = agent.metadata.get("replicaOf")
                if replica_of in self.pools and agent.status == AgentStatus.OFFLINE:
                    self._forget(agent.id)
        except (redis.RedisError, StoreUnavailableError) as exc:
            self.say(f"autoscale: could not list agents to forget stale replicas ({exc})")
        self.say(
            f"autoscale on: up to {self.limits.max_workers} workers per agent, adding one while "
            f"its backlog stays >= {self.limits.backlog} for {self.limits.up_after_s:g}s, "
            f"removing one after {self.limits.idle_s:g}s idle"
        )

    def tick(self) -> None:
        """One look at every pool; Redis being unreachable is reported once, then retried."""
        try:
            self._tick()
        except (redis.RedisError, StoreUnavailableError) as exc:
            if not self._redis_down:
                self.say(f"autoscale paused: Redis unreachable ({exc}); retrying")
            self._redis_down = True
            return
        if self._redis_down:
            self.say("autoscale resumed: Redis answers again")
        self._redis_down = False

    def _tick(self) -> None:
        now, now_ms = self.clock(), self._now_ms()
        self._finish_retired()
        for pool in self.pools.values():
            backlog = self.backlog(pool)
            if pool.starting is not None:
                started = self._replica(pool, pool.starting, now_ms)
                if started is not None and started.status == AgentStatus.ACTIVE:
                    pool.starting = None
            draining = self._replica(pool, pool.draining, now_ms) if pool.draining else None
            draining_load = draining.current_load if draining is not None else 0
            action = decide(pool, backlog, now, self.limits, draining_load)
            if action is not None:
                self._apply(pool, action, now_ms)
        self._publish(now_ms)

    def backlog(self, pool: Pool) -> int:
        """Steps parked for capacity on the agent's capabilities, and messages not yet taken
        from its queues (its own, its replicas' and its capabilities')."""
        capabilities = sorted(pool.agent.capability_names)
        queues = [agent_queue(pool.agent.id)]
        queues += [agent_queue(replica_id(pool.agent.id, n)) for n in pool.replicas]
        queues += [capability_queue(name) for name in capabilities]
        pipe = self.client.pipeline(transaction=False)
        for name in capabilities:
            pipe.llen(self.keys.waiting(name))
        for queue in queues:
            pipe.llen(self.keys.broker(queue))
        return sum(int(count) for count in pipe.execute())

    def _apply(self, pool: Pool, action: Action, now_ms: int) -> None:
        agent = pool.agent
        if action is Action.ADD:
            number = pool.next_number()
            child = self.replica_child(agent, number)
            self.supervisor.start(child)
            pool.replicas[number] = child
            pool.starting = number
            self._record(
                pool,
                f"added {replica_id(agent.id, number)} ({pool.workers} workers): backlog "
                f"{pool.backlog} >= {self.limits.backlog}",
            )
        elif action is Action.DRAIN:
            number = max(pool.replicas)
            self._set_status(replica_id(agent.id, number), AgentStatus.DRAINING, now_ms)
            pool.draining = number
            self._record(
                pool, f"draining {replica_id(agent.id, number)}: no backlog for "
                f"{self.limits.idle_s:g}s",
            )  # fmt: skip
        elif action is Action.REACTIVATE and pool.draining is not None:
            number, pool.draining = pool.draining, None
            self._set_status(replica_id(agent.id, number), AgentStatus.ACTIVE, now_ms)
            self._record(pool, f"kept {replica_id(agent.id, number)}: backlog {pool.backlog}")
        elif action is Action.STOP and pool.draining is not None:
            number, pool.draining = pool.draining, None
            child = pool.replicas.pop(number)
            self.retiring[replica_id(agent.id, number)] = child
            self.supervisor.retire(child)
            self._record(
                pool, f"stopping {replica_id(agent.id, number)} ({pool.workers} workers): idle"
            )

    def _finish_retired(self) -> None:
        """Deregister replicas whose process has exited."""
        for agent_id, child in list(self.retiring.items()):
            if child not in self.supervisor.children:
                self._forget(agent_id)
                del self.retiring[agent_id]

    def stop(self) -> None:
        """After `up` stopped every child: deregister every replica it started."""
        for pool in self.pools.values():
            for number in list(pool.replicas):
                self.retiring[replica_id(pool.agent.id, number)] = pool.replicas.pop(number)
        try:
            for agent_id in list(self.retiring):
                self._forget(agent_id)
            self.client.delete(self.keys.autoscaler)
        except (redis.RedisError, StoreUnavailableError):
            pass  # Redis went first; `start` forgets offline replicas next time
        self.retiring.clear()

    def _forget(self, agent_id: str) -> None:
        try:
            self.registry.delete(agent_id, self._now_ms())
        except AgentNotFoundError:
            pass

    def _set_status(self, agent_id: str, status: AgentStatus, now_ms: int) -> None:
        try:
            self.registry.update(agent_id, AgentUpdate(status=status), now_ms)
        except AgentNotFoundError:
            pass  # never registered (it died while starting): stopping it is still right

    def _replica(self, pool: Pool, number: int, now_ms: int) -> RegisteredAgent | None:
        """Replica ``number`` as registered, or None before it registered."""
        try:
            return self.registry.get(replica_id(pool.agent.id, number), now_ms)
        except AgentNotFoundError:
            return None

    def _record(self, pool: Pool, message: str) -> None:
        pool.last_action = message
        pool.last_action_at_ms = self._now_ms()
        self.say(f"autoscale: {message}")

    def status(self) -> list[dict[str, Any]]:
        """What the API and dashboard show, one entry per hosted agent."""
        return [
            {
                "agentId": pool.agent.id,
                "workers": pool.workers,
                "minWorkers": 1,
                "maxWorkers": self.limits.max_workers,
                "replicas": [replica_id(pool.agent.id, n) for n in sorted(pool.replicas)],
                "draining": replica_id(pool.agent.id, pool.draining) if pool.draining else None,
                "backlog": pool.backlog,
                "lastAction": pool.last_action or None,
                "lastActionAt": iso_from_ms(pool.last_action_at_ms),
            }
            for pool in self.pools.values()
        ]

    def _publish(self, now_ms: int) -> None:
        record = {
            "updatedAt": iso_from_ms(now_ms),
            "intervalS": self.settings.autoscale_interval_s,
            "backlogThreshold": self.limits.backlog,
            "agents": self.status(),
        }
        ttl_ms = int(self.settings.autoscale_interval_s * 1000 * STATUS_TTL_FACTOR) + 1000
        self.client.set(self.keys.autoscaler, json.dumps(record), px=ttl_ms)

    def _now_ms(self) -> int:
        return int(self.wall_clock() * 1000)

    def say(self, message: str) -> None:
        self.supervisor.say(message)
