"""Selection policies as objects: the built-ins and the ones users write.

A policy ranks the eligible candidates for a step, best first; routing then reserves a slot on
the first that still has room, atomically in Lua, so a policy cannot overload an agent, and
eligibility (active, alive, circuit closed, capabilities, agentType, not an agent the step failed
on) is decided before the policy sees the candidates. Write one as a subclass with a ``name`` and
one method, and put an instance at module level in a module named by MEOWSTIK_POLICY_MODULES (or
publish it under the ``meowstik.policies`` entry-point group)::

    from orchestrator.core.policies import Candidate, SelectionPolicy, StepToRoute

    class PreferReliable(SelectionPolicy):
        name = "prefer_reliable"
        uses_metrics = True  # candidates carry their last day's AgentMetrics

        def rank(self, candidates: list[Candidate], step: StepToRoute) -> list[Candidate]:
            return sorted(candidates, key=lambda c: -(c.metrics.success_rate or 0))

    policy = PreferReliable()

MEOWSTIK_SELECTION_POLICY, or a session's ``policy``, then names it. The built-ins
(``least_loaded``, ``priority_first``, ``round_robin``) also rank inside the completion script,
so a released step is routed in the round trip that released it; a Python policy ranks in the
process that routes (the API at submit, the worker after a completion), which costs a registry
read (and a metrics read when it uses them) per routing decision.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from orchestrator.core.agent_metrics import AgentMetrics
from orchestrator.core.errors import ConfigurationError
from orchestrator.core.models import RegisteredAgent
from orchestrator.core.selection import least_loaded, priority_first, round_robin

POLICY_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
BUILTIN_POLICIES = ("least_loaded", "priority_first", "round_robin")


@dataclass(frozen=True)
class Candidate:
    """An eligible agent for a step: its definition with live status and load, and (for
    policies with ``uses_metrics``) its metrics over the last day."""

    agent: RegisteredAgent
    metrics: AgentMetrics | None = None

    @property
    def id(self) -> str:
        return self.agent.id

    @property
    def load(self) -> int:
        return self.agent.current_load

    @property
    def has_room(self) -> bool:
        return self.agent.current_load < self.agent.max_load


@dataclass(frozen=True)
class StepToRoute:
    """What is being routed: steps of one session that need the same capabilities."""

    session_id: str
    step_ids: tuple[str, ...]
    capabilities: tuple[str, ...]
    agent_type: str | None = None
    rotation: int = 0  # increases with every routing decision of this process


@dataclass(frozen=True)
class Scored:
    """A ranked candidate with the score a policy gave it (shown in the routing log and on the
    step, so every decision can be explained)."""

    candidate: Candidate
    score: float
    why: str = ""

    @property
    def id(self) -> str:
        return self.candidate.id


@dataclass(frozen=True)
class Ranking:
    """rank_candidates' answer: the agents in order, and why (scores, when the policy gave
    them)."""

    agents: list[RegisteredAgent]
    scores: dict[str, float]
    notes: dict[str, str]  # per agent, what the policy said (e.g. "explore", "cold start")


class SelectionPolicy:
    """Subclass with a ``name`` and ``rank``. ``uses_metrics``: give candidates their metrics
    over ``metrics_window`` ("1h", "24h" or "all"). ``rank`` returns Candidates (or Scored
    ones, whose scores and notes explain the decision; or agent ids), best first. One instance
    serves every routing decision of the process, from several threads: keep no per-call state
    on it."""

    name: str = ""
    uses_metrics: bool = False
    metrics_window: str = "24h"
    builtin: bool = False  # also ranked inside the Lua scripts (the built-ins only)

    def rank(
        self, candidates: list[Candidate], step: StepToRoute
    ) -> Sequence[Candidate | Scored | str]:
        raise NotImplementedError


class _Builtin(SelectionPolicy):
    builtin = True

    def __init__(self, name: str, order) -> None:  # type: ignore[no-untyped-def]
        self.name = name
        self._order = order

    def rank(self, candidates: list[Candidate], step: StepToRoute) -> list[Candidate]:
        by_id = {c.id: c for c in candidates}
        ordered = self._order([c.agent for c in candidates], step.rotation)
        return [by_id[agent.id] for agent in ordered]


BUILTINS: tuple[SelectionPolicy, ...] = (
    _Builtin("least_loaded", least_loaded),
    _Builtin("priority_first", priority_first),
    _Builtin("round_robin", round_robin),
)


class PolicyCatalog:
    """The policies of this installation by name: the built-ins, then the users'."""

    def __init__(self, policies: Iterable[tuple[SelectionPolicy, str]] = ()) -> None:
        self._by_name: dict[str, SelectionPolicy] = {}
        self._origin: dict[str, str] = {}
        for policy in BUILTINS:
            self.add(policy, "the built-in policies")
        for policy, origin in policies:
            self.add(policy, origin)

    def add(self, policy: SelectionPolicy, origin: str) -> None:
        name = policy.name
        if not isinstance(name, str) or not re.match(POLICY_NAME_PATTERN, name):
            raise ConfigurationError(
                f"the selection policy from {origin} has name {name!r}: give its class a name of "
                'lowercase letters, digits and _ (e.g. name = "prefer_reliable")'
            )
        if name in self._by_name:
            raise ConfigurationError(
                f"selection policy {name!r} is defined twice: by {self._origin[name]} and by "
                f"{origin}; rename one"
            )
        self._by_name[name] = policy
        self._origin[name] = origin

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> SelectionPolicy:
        """The named policy; ConfigurationError listing the known ones otherwise."""
        if name not in self._by_name:
            raise ConfigurationError(
                f"no selection policy named {name!r}; known: {', '.join(self.names())}. Name a "
                "module defining it in MEOWSTIK_POLICY_MODULES on the API and the workers"
            )
        return self._by_name[name]


def rank_candidates(
    policy: SelectionPolicy,
    agents: Sequence[RegisteredAgent],
    step: StepToRoute,
    metrics: Mapping[str, AgentMetrics] | None = None,
) -> Ranking:
    """The eligible ``agents`` in the policy's order. A policy that drops or invents candidates
    is corrected: unknown ones are ignored, and those it left out follow in load order, so a
    step can always go where there is room."""
    candidates = [Candidate(agent, (metrics or {}).get(agent.id)) for agent in agents]
    ranked = policy.rank(list(candidates), step) if candidates else []
    known = {c.id: c for c in candidates}
    order: list[RegisteredAgent] = []
    scores: dict[str, float] = {}
    notes: dict[str, str] = {}
    for item in ranked:
        agent_id = item.id if isinstance(item, Candidate | Scored) else getattr(item, "id", item)
        if agent_id in known and all(agent_id != a.id for a in order):
            order.append(known[agent_id].agent)
            if isinstance(item, Scored):
                scores[agent_id] = round(item.score, 4)
                if item.why:
                    notes[agent_id] = item.why
    rest = [c.agent for c in candidates if all(c.id != a.id for a in order)]
    return Ranking(order + least_loaded(rest), scores, notes)
