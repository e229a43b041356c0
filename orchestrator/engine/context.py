"""What every engine part works with, handed to each by composition: the session store, the
agent registry, the broker, the settings, the process's one clock, the State Manager and the
sessions' workspaces, the selection policies. Built
once per process by ``wiring.build_engine``."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.core.clock import Clock
from orchestrator.core.dispatch import Dispatcher
from orchestrator.core.logentry import LogEntry
from orchestrator.core.policies import PolicyCatalog
from orchestrator.settings import Settings
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.sessions import SessionStore
from orchestrator.store.state import StateManager
from orchestrator.store.workspace import WorkspaceStore


@dataclass(frozen=True)
class EngineContext:
    sessions: SessionStore
    registry: AgentRegistry
    dispatcher: Dispatcher
    settings: Settings
    clock: Clock
    state: StateManager
    workspace: WorkspaceStore
    policies: PolicyCatalog = field(default_factory=PolicyCatalog)  # routing's, by name

    def now_ms(self) -> int:
        return self.clock.now_ms()

    @property
    def reserve_ms(self) -> int:
        """How long a routed step's slot is held for its claim (MEOWSTIK_RESERVATION_S)."""
        return int(self.settings.reservation_s * 1000)

    @property
    def lease_ms(self) -> int:
        """How long a claim or a renewal owns a running step (MEOWSTIK_LEASE_S)."""
        return int(self.settings.lease_s * 1000)

    def log(self, entry: LogEntry) -> None:
        """Write one entry to the durable log now (a round trip of its own)."""
        self.sessions.log(entry, self.now_ms())
