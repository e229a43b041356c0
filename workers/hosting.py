"""Hosting agents in a Celery worker: which queues it consumes, and registering its agents in
the registry when it is ready (offline again on a clean shutdown)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

import redis
from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from orchestrator.settings import Settings
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.keys import Keys, agent_queue, capability_queue
from workers.agents.base import Agent

log = logging.getLogger(__name__)


def worker_queues(agents: Iterable[Agent]) -> list[str]:
    """``cap.<capability>`` for every capability of the hosted agents, plus ``agent.<id>``."""
    queues: set[str] = set()
    for agent in agents:
        queues.add(agent_queue(agent.definition.id))
        queues.update(capability_queue(name) for name in agent.definition.capability_names)
    return sorted(queues)


def default_concurrency(agents: Iterable[Agent], ceiling: int = 8) -> int:
    """Enough processes for every hosted agent's maxLoad, up to ``ceiling``."""
    return max(1, min(ceiling, sum(agent.definition.max_load for agent in agents)))


def host_agents(app: Celery, settings: Settings, agents: Mapping[str, Agent]) -> None:
    """Make ``agents`` the ones this worker runs, and register them once it is ready."""
    app.conf.meowstik_hosted_agents = dict(agents)
    registry = AgentRegistry(
        redis.Redis.from_url(settings.effective_redis_url), Keys(settings.key_prefix)
    )
    names: dict[str, str] = {}

    def on_ready(sender: object = None, **_: object) -> None:
        worker = str(getattr(sender, "hostname", "") or "worker")
        names["worker"] = worker
        now_ms = int(time.time() * 1000)
        for agent in agents.values():
            registry.register(agent.definition, worker=worker, now_ms=now_ms)
        log.info("worker %s registered agents %s", worker, ", ".join(sorted(agents)))

    def on_shutdown(**_: object) -> None:
        if "worker" in names:
            try:
                registry.mark_offline(agents, worker=names["worker"])
            except redis.RedisError as exc:
                log.warning("could not mark agents offline: %s", exc)

    worker_ready.connect(on_ready, weak=False)
    worker_shutdown.connect(on_shutdown, weak=False)
