"""Routing: which agent runs a step. Ranks the eligible agents with the configured policy, then
reserves a slot on the first one that still has room (one Lua call), or parks the step until a
slot frees (waiting for capacity), or, with no eligible agent alive at all, until one appears or
its schedule deadline passes (waiting for an agent); dispatches what got a slot to that agent's
queue."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from orchestrator.core.agent_metrics import AgentMetrics
from orchestrator.core.availability import WAITING_FOR_AGENT, WAITING_FOR_CAPACITY
from orchestrator.core.dispatch import StepDispatch
from orchestrator.core.errors import ConfigurationError
from orchestrator.core.logentry import LogEntry, iso_from_ms
from orchestrator.core.models import RegisteredAgent
from orchestrator.core.policies import Ranking, SelectionPolicy, StepToRoute, rank_candidates
from orchestrator.core.selection import is_eligible, rank
from orchestrator.core.statuses import AgentStatus
from orchestrator.engine.context import EngineContext
from orchestrator.store.scripts import Handoff, Transition

METRICS_TTL_MS = 1000
EMPTY: Mapping[str, str] = MappingProxyType({})


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
    agent_id: str | None  # None: waiting (for ``waiting_for``)
    queue: str = ""
    waiting_for: str | None = None  # "capacity" or "agent" (core/availability.py)
    schedule_deadline_ms: int | None = None  # waiting for an agent: when it fails


def pin(
    ranking: Ranking,
    agents: Sequence[RegisteredAgent],
    capabilities: Sequence[str],
    agent_type: str | None,
    excluded: Sequence[str],
    overrides: Mapping[str, str],
) -> tuple[Ranking, str | None]:
    """The ranking with a session's pinned agent (``agentOverrides``: capability -> agent) as
    the only candidate, so the step goes there or waits for its capacity; and that agent's id
    (None when no pin applies). The first of the
    step's capabilities with a pin decides; a pinned agent that is not eligible for the step
    (unknown, dead, drained, circuit open, lacking a capability, failed on it before) leaves
    the policy's ranking as it was, with a note saying why."""
    for capability in capabilities:
        agent_id = overrides.get(capability)
        if agent_id is None:
            continue
        chosen = next((a for a in ranking.agents if a.id == agent_id), None)
        if chosen is not None:
            why = f"pinned: agentOverrides sends {capability} here"
            return Ranking([chosen], ranking.scores, {**ranking.notes, agent_id: why}), agent_id
        known = next((a for a in agents if a.id == agent_id), None)
        reason = (
            "it is not registered with every capability the step needs"
            if known is None
            else why_not_eligible(known, capabilities, agent_type, excluded)
        )
        note = f"pinned for {capability} but {reason}; ranked by the policy instead"
        return Ranking(ranking.agents, ranking.scores, {**ranking.notes, agent_id: note}), None
    return ranking, None


def why_not_eligible(
    agent: RegisteredAgent,
    capabilities: Sequence[str],
    agent_type: str | None,
    excluded: Sequence[str],
) -> str:
    if agent.id in excluded:
        return "the step already failed on it"
    if agent.status != AgentStatus.ACTIVE:
        return f"it is {agent.status.value}"
    if agent.circuit.state == "open":
        return "its circuit is open"
    if agent_type is not None and agent.type != agent_type:
        return f"the step needs agent type {agent_type!r}"
    missing = sorted(set(capabilities) - agent.capability_names)
    return f"it lacks {', '.join(missing)}" if missing else "it is not eligible"


class Router:
    """Routes queued steps of a session to agents and dispatches those that got a slot."""

    def __init__(self, context: EngineContext) -> None:
        self.context = context
        self._rotation = 0
        self._metrics_cache: dict[tuple[str, str], AgentMetrics] = {}
        self._metrics_at: dict[tuple[str, str], int] = {}

    def route(
        self,
        session_id: str,
        requests: Sequence[RouteRequest],
        *,
        agents: Sequence[RegisteredAgent] | None = None,
        policy: str | None = None,
        overrides: Mapping[str, str] | None = None,
    ) -> list[Routed]:
        """Route queued steps of one session; those that got a slot are dispatched.

        ``agents``, when the caller just read the registry, are ranked instead of reading the
        candidates again (the script still reserves only where there is room). ``policy`` and
        ``overrides``: the session's selection policy and pinned agents (capability -> agent)
        when the caller knows them (else they are read: the session's ``policy``, or
        MEOWSTIK_SELECTION_POLICY, and its ``agentOverrides``)."""
        if not requests:
            return []
        if policy is None or overrides is None:
            named, pins = self.context.sessions.routing_choice(session_id)
            policy = policy or named
            overrides = pins if overrides is None else overrides
        name = policy or self.default_policy
        groups: dict[tuple, list[str]] = defaultdict(list)
        for request in requests:
            key = (request.capabilities, request.agent_type, request.excluded)
            groups[key].append(request.step_id)
        routed: list[Routed] = []
        for (capabilities, agent_type, excluded), step_ids in groups.items():
            routed += self._route_group(
                session_id, step_ids, capabilities, agent_type, excluded, agents, name, overrides
            )
        return routed

    def _metrics(self, agent_ids: list[str], window: str, now: int) -> dict[str, AgentMetrics]:
        """The agents' metrics for policies that use them: read at most once a second per agent
        and window by this process (reading a day is 25 hashes per agent)."""
        keys = [(a, window) for a in agent_ids]
        stale = [
            a
            for a, w in keys
            if now - self._metrics_at.get((a, w), -METRICS_TTL_MS) >= METRICS_TTL_MS
        ]
        if stale:
            fresh = self.context.registry.metrics.read_many(stale, window, now)  # type: ignore[arg-type]
            for agent_id, view in fresh.items():
                self._metrics_cache[(agent_id, window)] = view
                self._metrics_at[(agent_id, window)] = now
        return {a: self._metrics_cache[(a, window)] for a in agent_ids}

    def _explain(
        self,
        session_id: str,
        policy_name: str,
        ranking: Ranking,
        reserved: Sequence[tuple[str, str, str]],
        now: int,
    ) -> None:
        """Say why each reserved step went where it did: a "Step routed" log entry (the live
        events) and the step's ``routing`` on the snapshot."""
        explanations, logs = {}, []
        for step_id, agent_id, _queue in reserved:
            why = {
                "policy": policy_name,
                "agentId": agent_id,
                "scores": ranking.scores,
                "notes": ranking.notes,
                "order": [a.id for a in ranking.agents],
                "at": iso_from_ms(now),
            }
            explanations[step_id] = json.dumps(why, separators=(",", ":"))
            logs.append(
                LogEntry(
                    "info",
                    "orchestrator",
                    "Step routed",
                    session_id=session_id,
                    task_id=step_id,
                    agent_id=agent_id,
                    data=why,
                )
            )
        if explanations:
            self.context.sessions.note_routing(session_id, explanations, logs, now)

    def _policy(self, session_id: str, name: str) -> SelectionPolicy:
        """The named policy; when this process does not define it (a worker started without
        the module the API has), the default, with a warning in the session's log."""
        try:
            return self.context.policies.get(name)
        except ConfigurationError as exc:
            self.context.log(
                LogEntry(
                    "warn",
                    "orchestrator",
                    "Selection policy missing here; routed with the default",
                    session_id=session_id,
                    data={"policy": name, "default": self.default_policy, "error": exc.message},
                )
            )
            return self.context.policies.get(self.default_policy)

    @property
    def default_policy(self) -> str:
        return self.context.settings.selection_policy

    def inline_policy(self) -> str:
        """What complete_step.lua routes released steps with: the default policy when it is a
        built-in, else "" (a Python policy ranks here, after the script)."""
        name = self.default_policy
        return name if self.context.policies.get(name).builtin else ""

    def has_fallback(
        self, capabilities: Sequence[str], agent_type: str | None, excluded: Sequence[str]
    ) -> bool:
        """Whether an eligible agent other than ``excluded`` exists (busy or not)."""
        agents = self.context.registry.candidates(capabilities, self.context.now_ms())
        return bool(rank(agents, capabilities, agent_type, excluded))

    def offer_capacity(self, agent_id: str) -> list[Handoff]:
        """Give the agent's free slots (after dropping expired ones) to waiting steps, and
        dispatch them. Called on heartbeats and when an operator frees capacity."""
        handed = self.context.sessions.reap_agent(
            agent_id, now_ms=self.context.now_ms(), reserve_ms=self.context.reserve_ms
        )
        self.dispatch_handoffs(handed)
        return handed

    def dispatch_handoffs(self, handed: Sequence[Handoff]) -> None:
        """Send steps that a freed slot was handed to."""
        if not handed:
            return
        self.context.dispatcher.dispatch(
            [StepDispatch.of(h.session_id, h.step_id, h.queue, h.agent_id) for h in handed]
        )

    def dispatch_routed(self, session_id: str, routed: Sequence[tuple[str, str, str]]) -> None:
        """Send steps a script reserved a slot for: (step id, agent id, queue) each."""
        if routed:
            self.context.dispatcher.dispatch(
                [StepDispatch.of(session_id, step, queue, agent) for step, agent, queue in routed]
            )

    def release_rotation(self) -> int:
        """The round-robin rotation complete_step counts on from when it routes the steps a
        completion releases (one decision each); advances this router's rotation."""
        start = self._rotation
        self._rotation += 1
        return start

    def settle_released(self, session_id: str, transition: Transition) -> None:
        """After a completion: dispatch the released steps complete_step routed itself, log those
        it parked, and route the rest (steps it left to this router)."""
        self.dispatch_routed(session_id, transition.routed)
        records = dict(transition.released)
        for step_id, candidates in transition.parked:
            request = RouteRequest.from_record(step_id, records[step_id])
            self._log_waiting(
                session_id,
                step_id,
                candidates,
                request.capabilities,
                request.excluded,
                records[step_id].get("scheduleDeadline"),
            )
        settled = {s for s, _a, _q in transition.routed} | {s for s, _c in transition.parked}
        rest = [
            RouteRequest.from_record(step_id, record)
            for step_id, record in transition.released
            if step_id not in settled
        ]
        if rest:
            self.route(session_id, rest)

    def _log_waiting(
        self,
        session_id: str,
        step_id: str,
        candidates: Sequence[str],
        capabilities: Sequence[str],
        excluded: Sequence[str],
        schedule_deadline_ms: int | None = None,
    ) -> None:
        data: dict = {
            "candidates": list(candidates),
            "capabilities": list(capabilities),
            "excluded": list(excluded),
        }
        if candidates:
            level, message = "info", "Step waiting for capacity"
        else:
            level, message = "warn", "Step waiting for an agent"
            data["scheduleDeadline"] = iso_from_ms(schedule_deadline_ms or None)
            data["fix"] = (
                "no eligible agent is alive: start a worker hosting one, set "
                "MEOWSTIK_LLM_BASE_URL for a `meowstik worker --remote`, or register an HTTP agent"
            )
        self.context.log(
            LogEntry(
                level,
                "orchestrator",
                message,
                session_id=session_id,
                task_id=step_id,
                data=data,
            )
        )

    def _route_group(
        self,
        session_id: str,
        step_ids: list[str],
        capabilities: tuple[str, ...],
        agent_type: str | None,
        excluded: tuple[str, ...],
        known: Sequence[RegisteredAgent] | None,
        policy_name: str,
        overrides: Mapping[str, str] = EMPTY,
    ) -> list[Routed]:
        context = self.context
        now = context.now_ms()
        if known is None:
            agents = context.registry.candidates(capabilities, now)
        else:
            agents = [a for a in known if a.capability_names.issuperset(capabilities)]
        self._rotation += 1
        policy = self._policy(session_id, policy_name)
        eligible = [a for a in agents if is_eligible(a, capabilities, agent_type, excluded)]
        metrics = None
        if policy.uses_metrics and eligible:
            metrics = self._metrics([a.id for a in eligible], policy.metrics_window, now)
        step = StepToRoute(session_id, tuple(step_ids), capabilities, agent_type, self._rotation)
        ranking = rank_candidates(policy, eligible, step, metrics)
        pinned = None
        if overrides:
            ranking, pinned = pin(ranking, agents, capabilities, agent_type, excluded, overrides)
        ranked = ranking.agents
        routing = context.sessions.route(
            session_id,
            step_ids,
            now_ms=now,
            reserve_ms=context.reserve_ms,
            capabilities=capabilities,
            agent_type=agent_type,
            excluded=excluded,
            candidates=[agent.id for agent in ranked],
            pinned=pinned,
        )
        self.dispatch_routed(session_id, routing.reserved)
        if ranking.scores or ranking.notes:
            self._explain(session_id, policy_name, ranking, routing.reserved, now)
        deadlines = routing.schedule_deadlines
        for step_id in routing.waiting:
            self._log_waiting(
                session_id,
                step_id,
                [a.id for a in ranked],
                capabilities,
                excluded,
                deadlines.get(step_id),
            )
        return [Routed(s, a, q) for s, a, q in routing.reserved] + [
            Routed(
                s,
                None,
                waiting_for=WAITING_FOR_AGENT if s in deadlines else WAITING_FOR_CAPACITY,
                schedule_deadline_ms=deadlines.get(s) or None,
            )
            for s in routing.waiting
        ]
