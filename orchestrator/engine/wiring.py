"""The one place the object graph is built: store classes over one Redis client, the context
with the process's clock and broker, the router, the outcomes, the engine, the step lifecycle
and the reconciler. The API (``api.app.create_app``), the workers (``workers.hosting``,
``workers.runtime``) and the tests (``tests.support.world``) all call ``build_engine``."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import redis

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.dispatch import Dispatcher
from orchestrator.engine.agents import Agents
from orchestrator.engine.context import EngineContext
from orchestrator.engine.facade import Engine
from orchestrator.engine.lifecycle import StepLifecycle
from orchestrator.engine.outcomes import Outcomes
from orchestrator.engine.policies import load_policies
from orchestrator.engine.recovery import Reconciler
from orchestrator.engine.routing import Router
from orchestrator.planning.service import Planning
from orchestrator.settings import Settings
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.keys import Keys
from orchestrator.store.logbook import Logbook
from orchestrator.store.replication import ReplicaAcks
from orchestrator.store.sessions import SessionStore
from orchestrator.store.state import StateManager
from orchestrator.store.workspace import WorkspaceStore


@dataclass(frozen=True)
class Wired:
    context: EngineContext
    router: Router
    outcomes: Outcomes
    engine: Engine
    agents: Agents
    lifecycle: StepLifecycle
    reconciler: Reconciler
    logbook: Logbook

    @property
    def sessions(self) -> SessionStore:
        return self.context.sessions

    @property
    def registry(self) -> AgentRegistry:
        return self.context.registry


def build_engine(
    settings: Settings,
    client: redis.Redis,
    dispatcher: Dispatcher,
    *,
    clock: Clock = SYSTEM_CLOCK,
    planning: Planning | None = None,
    keys: Keys | None = None,
    tool_names: Collection[str] | None = None,
) -> Wired:
    """Wire every engine part over ``client`` (keys under ``settings.key_prefix`` unless
    ``keys`` is given). ``planning`` defaults to the templates read on first use.
    ``tool_names`` are the registered tools agents registered over REST may name (the API
    passes them; None: not checked). ``clock`` is the process's: processes pass their
    RedisClock (Redis's time, orchestrator/store/redis_clock.py), tests a fake."""
    keys = keys or Keys(settings.key_prefix)
    logbook = Logbook(client, keys)
    context = EngineContext(
        sessions=SessionStore(client, keys, logbook, replica_acks=ReplicaAcks.of(settings)),
        registry=AgentRegistry(client, keys),
        dispatcher=dispatcher,
        settings=settings,
        clock=clock,
        state=StateManager(
            client,
            keys,
            clock=clock,
            logbook=logbook,
            max_value_bytes=settings.max_state_value_bytes,
        ),
        workspace=WorkspaceStore(
            client,
            keys,
            max_file_bytes=settings.workspace_max_file_bytes,
            max_files=settings.workspace_max_files,
        ),
        policies=load_policies(settings),
    )
    router = Router(context)
    outcomes = Outcomes(context, router)
    engine = Engine(context, router, outcomes, planning=planning)
    return Wired(
        context=context,
        router=router,
        outcomes=outcomes,
        engine=engine,
        agents=Agents(context, router, tool_names=tool_names),
        lifecycle=StepLifecycle(context, router, outcomes, engine.budgets),
        reconciler=Reconciler(context, router, outcomes, engine.control),
        logbook=logbook,
    )
