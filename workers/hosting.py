"""Hosting agents in a Celery worker: the queues it consumes, registering its agents when it is
ready, heartbeats while it consumes, and offline on a clean shutdown.

The heartbeat runs on the worker's event-loop timer, in the same loop that consumes messages, so
a worker whose loop stops consuming also stops heartbeating and its agents go offline. Each beat
also drops the expired slots of its agents and hands free slots to waiting steps, so capacity
that appears without a release (an agent coming online, a dead run's lease expiring) is used,
and runs the reconciler, which reroutes steps whose run died or whose message was lost.

A worker refuses a Redis whose maxmemory-policy may evict keys (orchestrator/store/
redis_health.py): at start (``host_agents`` raises EvictionPolicyError), and on every beat while
it runs, by not heartbeating, so no step is routed to it until the policy is noeviction again.
MEOWSTIK_REDIS_ALLOW_EVICTION turns both into a warning.

A worker started with ``--remote`` heartbeats the HTTP agents registered over the API, and the
LLM agents only when its settings name an LLM (MEOWSTIK_LLM_BASE_URL): without one they stay
unhosted and are never routed to a worker that could not run them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping

from celery import Celery, bootsteps
from celery.signals import task_received, worker_ready, worker_shutdown

from orchestrator.core.errors import StoreUnavailableError
from orchestrator.core.ids import REMOTE_EXECUTOR_QUEUE, agent_queue, capability_queue
from orchestrator.engine.wiring import build_engine
from orchestrator.settings import Settings
from orchestrator.store.connection import client_for
from orchestrator.store.keys import Keys
from orchestrator.store.redis_clock import RedisClock
from orchestrator.store.redis_health import EvictionGuard
from orchestrator.store.workers import WorkerRegistry
from workers.agents.base import Agent
from workers.celery_app import RUN_STEP_TASK
from workers.dispatcher import CeleryDispatcher
from workers.executors.llm import llm_available
from workers.tracing import trace_worker
from workers.webhooks import Deliverer

log = logging.getLogger(__name__)


def worker_queues(agents: Iterable[Agent], *, remote: bool = False) -> list[str]:
    """``agent.<id>`` for every hosted agent (where the router sends their steps), ``cap.<name>``
    for their capabilities (a message published there without an agent is routed on arrival),
    and the remote executor's queue if asked."""
    queues: set[str] = set()
    for agent in agents:
        queues.add(agent_queue(agent.definition.id))
        queues.update(capability_queue(name) for name in agent.definition.capability_names)
    if remote:
        queues.add(REMOTE_EXECUTOR_QUEUE)
    return sorted(queues)


def default_concurrency(agents: Iterable[Agent], ceiling: int = 8) -> int:
    """Enough processes for every hosted agent's maxLoad, up to ``ceiling``."""
    return max(1, min(ceiling, sum(agent.definition.max_load for agent in agents)))


def is_consuming(
    *,
    backlog: int,
    active: int,
    concurrency: int,
    last_received_ms: int,
    now_ms: int,
    grace_ms: int,
) -> bool:
    """Pure liveness rule: a worker with free processes and waiting messages must have received
    one within ``grace_ms``; otherwise it is deaf."""
    if backlog == 0 or active >= concurrency:
        return True
    return now_ms - last_received_ms <= grace_ms


class Presence:
    """Registration, heartbeat and slot reaping for the agents one worker executes."""

    def __init__(self, app: Celery, settings: Settings, agents: Mapping[str, Agent], remote: bool):
        client = client_for(settings, socket_timeout=5)
        clock = RedisClock(client)  # the main process's: heartbeats, reconciler, message ETAs
        wired = build_engine(settings, client, CeleryDispatcher(app, clock), clock=clock)
        self.settings = settings
        self.clock = clock
        self.agents = dict(agents)
        self.remote = remote
        self.llm = remote and llm_available(settings)
        self.registry = wired.registry
        self.workers = WorkerRegistry(client, Keys(settings.key_prefix))
        self.eviction = EvictionGuard(client, settings.redis_allow_eviction, "this worker")
        self.sessions = wired.sessions
        self.router = wired.router
        self.reconciler = wired.reconciler
        self.deliverer = Deliverer(wired.context, settings)
        self.timeouts = wired.lifecycle.timeouts  # step messages' time limits (time_limits.py)
        self.worker = ""
        self.queues = worker_queues(self.agents.values(), remote=remote)
        self.concurrency = 1
        self.started_ms = self.clock.now_ms()
        self.last_received_ms = self.started_ms

    @property
    def alive_ms(self) -> int:
        return int(self.settings.heartbeat_timeout_s * 1000)

    def agent_ids(self) -> list[str]:
        ids = list(self.agents)
        if self.remote:
            hosted = set(ids)
            ids += [i for i in self.registry.remote_agent_ids(llm=self.llm) if i not in hosted]
        return ids

    def ready(self, worker: str) -> None:
        self.worker = worker
        now_ms = self.clock.now_ms()
        for agent in self.agents.values():
            self.registry.register(
                agent.definition, worker=worker, now_ms=now_ms, alive_ms=self.alive_ms
            )
        log.info("worker %s registered agents %s", worker, ", ".join(sorted(self.agents)))
        self.beat()
        self.deliverer.start()

    def received(self, **_: object) -> None:
        """A message reached this worker's consumer (Celery's task_received signal)."""
        self.last_received_ms = self.clock.now_ms()

    def consuming(self, now_ms: int) -> bool:
        """Whether the consumer still takes messages: idle with nothing queued, busy in every
        process, or it received something recently (FIELD-NOTES: deaf after a Redis restart)."""
        from celery.worker import state

        backlog = sum(int(self.sessions.queue_length(q)) for q in self.queues)
        return is_consuming(
            backlog=backlog,
            active=len(state.active_requests),
            concurrency=self.concurrency,
            last_received_ms=self.last_received_ms,
            now_ms=now_ms,
            grace_ms=self.alive_ms,
        )

    def beat(self) -> None:
        if not self.worker:
            return
        now_ms = self.clock.now_ms()
        try:
            if not self.eviction.allows_work():  # it logged why
                return
            if not self.consuming(now_ms):
                log.warning(
                    "worker %s has queued messages but consumes none: not heartbeating", self.worker
                )
                return
            ids = self.agent_ids()
            self.registry.heartbeat(
                ids,
                worker=self.worker,
                now_ms=now_ms,
                alive_ms=self.alive_ms,
                remote=self.remote,
                llm=self.llm,
            )
            self.workers.heartbeat(
                self.worker, self.describe(ids), now_ms=now_ms, alive_ms=self.alive_ms
            )
            for agent_id in ids:
                self.router.offer_capacity(agent_id)
            self.reconciler.run_once()
            self.sessions.housekeep(
                now_ms=now_ms, retention_ms=self.settings.session_retention_s * 1000
            )
        except Exception as exc:  # noqa: BLE001 - a missed beat must not stop the worker
            log.warning("heartbeat failed: %s", exc)

    def describe(self, agent_ids: list[str]) -> dict:
        """What this worker is, for GET /api/workers (Flower's shape) and the dashboard."""
        return {
            "hostname": self.worker,
            "pid": os.getpid(),
            "queues": self.queues,
            "agents": agent_ids,
            "concurrency": self.concurrency,
            "pool": self.settings.worker_pool,
            "remote": self.remote,
            "llm": self.llm,
            "startedAt": self.started_ms,
            "registered": [RUN_STEP_TASK],
        }

    def shutdown(self) -> None:
        self.deliverer.stop()
        if not self.worker:
            return
        try:
            self.workers.mark_offline(self.worker, now_ms=self.clock.now_ms())
            self.registry.mark_offline(self.agent_ids(), worker=self.worker)
        except StoreUnavailableError as exc:
            log.warning("could not mark agents offline: %s", exc)


def host_agents(
    app: Celery, settings: Settings, agents: Mapping[str, Agent], *, remote: bool = False
) -> Presence:
    """Make ``agents`` the ones this worker runs (and remote agents, if ``remote``).

    Raises:
        EvictionPolicyError: Redis's maxmemory-policy may evict keys (and
            MEOWSTIK_REDIS_ALLOW_EVICTION is not set); a Redis not answering yet is checked on
            the heartbeat instead.
    """
    trace_worker(settings)  # MEOWSTIK_TRACING: before the pool forks (workers/tracing.py)
    app.conf.meowstik_hosted_agents = dict(agents)
    app.conf.meowstik_remote = remote
    presence = Presence(app, settings, agents, remote)
    presence.eviction.check_at_start()
    app.conf.meowstik_timeouts = presence.timeouts
    app.conf.meowstik_clock = presence.clock  # step messages' ETAs onto this host's clock

    class Heartbeat(bootsteps.StartStopStep):
        requires = {"celery.worker.components:Timer"}

        def __init__(self, worker, **kwargs):
            super().__init__(worker, **kwargs)
            self.tref = None

        def start(self, worker):
            self.tref = worker.timer.call_repeatedly(
                settings.heartbeat_interval_s, presence.beat, priority=10
            )

        def stop(self, worker):
            if self.tref is not None:
                self.tref.cancel()
                self.tref = None

    app.steps["worker"].add(Heartbeat)

    def on_ready(sender: object = None, **_: object) -> None:
        presence.concurrency = int(getattr(getattr(sender, "pool", None), "limit", 0) or 1)
        presence.ready(str(getattr(sender, "hostname", "") or "worker"))

    def on_shutdown(**_: object) -> None:
        presence.shutdown()

    task_received.connect(presence.received, weak=False)
    worker_ready.connect(on_ready, weak=False)
    worker_shutdown.connect(on_shutdown, weak=False)
    return presence
