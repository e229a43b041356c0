"""Routing: which agent runs a step. Ranks the eligible agents with the configured policy, then
reserves a slot on the first one that still has room (one Lua call), or parks the step until a
slot frees; dispatches what got a slot to that agent's queue."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from orchestrator.dispatch import Dispatcher, StepDispatch
from orchestrator.selection import rank
from orchestrator.settings import Settings
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.keys import job_id
from orchestrator.store.logbook import LogEntry
from orchestrator.store.scripts import Handoff
from orchestrator.store.sessions import SessionStore


@dataclass(frozen=True)
class RouteRequest:
    step_id: str
    capabilities: tuple[str, ...]
    agent_type: str | None = None
    excluded: tuple[str, ...] = ()

    @classmethod
    def from_record(cls, step_id: str, record: dict) -> RouteRequest:
        return cls(
            step_id,
            tuple(record["caps"]),
            record.get("agentType"),
            tuple(record.get("failedAgents") or ()),
        )


@dataclass(frozen=True)
class Routed:
    step_id: str
    agent_id: str | None  # None: waiting for capacity


class Router:
    def __init__(
        self,
        sessions: SessionStore,
        registry: AgentRegistry,
        dispatcher: Dispatcher,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sessions = sessions
        self.registry = registry
        self.dispatcher = dispatcher
        self.settings = settings
        self._clock = clock
        self._rotation = 0

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    @property
    def reserve_ms(self) -> int:
        return int(self.settings.reservation_s * 1000)

    def route(self, session_id: str, requests: Sequence[RouteRequest]) -> list[Routed]:
        """Route queued steps of one session; those that got a slot are dispatched."""
        groups: dict[tuple, list[str]] = defaultdict(list)
        for request in requests:
            key = (request.capabilities, request.agent_type, request.excluded)
            groups[key].append(request.step_id)
        routed: list[Routed] = []
        for (capabilities, agent_type, excluded), step_ids in groups.items():
            routed += self._route_group(session_id, step_ids, capabilities, agent_type, excluded)
        return routed

    def has_fallback(
        self, capabilities: Sequence[str], agent_type: str | None, excluded: Sequence[str]
    ) -> bool:
        """Whether an eligible agent other than ``excluded`` exists (busy or not)."""
        agents = self.registry.candidates(capabilities, self.now_ms())
        return bool(rank(agents, capabilities, agent_type, excluded))

    def offer_capacity(self, agent_id: str) -> list[Handoff]:
        """Give the agent's free slots (after dropping expired ones) to waiting steps, and
        dispatch them. Called on heartbeats and when an operator frees capacity."""
        handed = self.sessions.reap_agent(
            agent_id, now_ms=self.now_ms(), reserve_ms=self.reserve_ms
        )
        self.dispatch_handoffs(handed)
        return handed

    def note_end(self, session_id: str, status: str) -> None:
        """Log the session's end once (the call that ended it says so): the last SSE event."""
        self.sessions.log(
            LogEntry(
                "info",
                "orchestrator",
                "Session finished",
                session_id=session_id,
                data={"status": status},
            ),
            self.now_ms(),
        )

    def dispatch_handoffs(self, handed: Sequence[Handoff]) -> None:
        """Send steps that a freed slot was handed to."""
        if not handed:
            return
        self.dispatcher.dispatch(
            [
                StepDispatch(
                    h.session_id, h.step_id, job_id(h.session_id, h.step_id), h.queue, h.agent_id
                )
                for h in handed
            ]
        )

    def _route_group(
        self,
        session_id: str,
        step_ids: list[str],
        capabilities: tuple[str, ...],
        agent_type: str | None,
        excluded: tuple[str, ...],
    ) -> list[Routed]:
        now = self.now_ms()
        agents = self.registry.candidates(capabilities, now)
        self._rotation += 1
        ranked = rank(
            agents,
            capabilities,
            agent_type,
            excluded,
            policy=self.settings.selection_policy,
            rotation=self._rotation,
        )
        routing = self.sessions.route(
            session_id,
            step_ids,
            now_ms=now,
            reserve_ms=self.reserve_ms,
            capabilities=capabilities,
            agent_type=agent_type,
            excluded=excluded,
            candidates=[agent.id for agent in ranked],
        )
        if routing.reserved:
            self.dispatcher.dispatch(
                [
                    StepDispatch(session_id, step_id, job_id(session_id, step_id), queue, agent_id)
                    for step_id, agent_id, queue in routing.reserved
                ]
            )
        for step_id in routing.waiting:
            self.sessions.log(
                LogEntry(
                    "info",
                    "orchestrator",
                    "Step waiting for capacity",
                    session_id=session_id,
                    task_id=step_id,
                    data={
                        "candidates": [a.id for a in ranked],
                        "capabilities": list(capabilities),
                        "excluded": list(excluded),
                    },
                ),
                now,
            )
        return [Routed(s, a) for s, a, _q in routing.reserved] + [
            Routed(s, None) for s in routing.waiting
        ]
