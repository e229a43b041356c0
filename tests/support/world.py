"""An in-process orchestrator over one Redis client, with a manual clock and a recording
dispatcher: the domain without Celery, for unit tests. Wired by the same ``build_engine`` the
API and the workers use."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from orchestrator.core.clock import Clock
from orchestrator.core.fleet import DEFAULT_AGENTS
from orchestrator.core.models import AgentDefinition
from orchestrator.engine.facade import Engine
from orchestrator.engine.lifecycle import StepLifecycle
from orchestrator.engine.recovery import Reconciler
from orchestrator.engine.routing import Router
from orchestrator.engine.wiring import build_engine
from orchestrator.planning.service import Planning
from orchestrator.settings import Settings
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.keys import Keys
from orchestrator.store.sessions import SessionStore
from tests.support.recording import ManualClock, RecordingDispatcher

FOREVER_MS = 10**13


@dataclass
class World:
    engine: Engine
    lifecycle: StepLifecycle
    router: Router
    dispatcher: RecordingDispatcher
    clock: ManualClock
    registry: AgentRegistry
    sessions: SessionStore
    reconciler: Reconciler

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def register(self, *agents: AgentDefinition, alive_ms: int = FOREVER_MS) -> None:
        for agent in agents:
            self.registry.register(agent, worker="w1", now_ms=self.now_ms(), alive_ms=alive_ms)


def build_world(
    client: redis.Redis,
    settings: Settings,
    *,
    agents: tuple[AgentDefinition, ...] = DEFAULT_AGENTS,
    dispatcher: RecordingDispatcher | None = None,
    prefix: str = "t",
    planning: Planning | None = None,
) -> World:
    clock = ManualClock()
    dispatcher = dispatcher or RecordingDispatcher()
    wired = build_engine(
        settings, client, dispatcher, clock=Clock(clock), planning=planning, keys=Keys(prefix)
    )
    world = World(
        wired.engine,
        wired.lifecycle,
        wired.router,
        dispatcher,
        clock,
        wired.registry,
        wired.sessions,
        wired.reconciler,
    )
    world.register(*agents)
    return world
