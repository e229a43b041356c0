"""An in-process orchestrator over one Redis client, with a manual clock and a recording
dispatcher: the domain without Celery, for unit tests."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from orchestrator.core.fleet import DEFAULT_AGENTS
from orchestrator.core.models import AgentDefinition
from orchestrator.engine.lifecycle import StepLifecycle
from orchestrator.engine.routing import Router
from orchestrator.engine.submission import Engine
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
) -> World:
    keys = Keys(prefix)
    clock = ManualClock()
    dispatcher = dispatcher or RecordingDispatcher()
    registry = AgentRegistry(client, keys)
    sessions = SessionStore(client, keys)
    router = Router(sessions, registry, dispatcher, settings, clock=clock)
    world = World(
        Engine(router, clock=clock),
        StepLifecycle(router, clock=clock),
        router,
        dispatcher,
        clock,
        registry,
        sessions,
    )
    world.register(*agents)
    return world
