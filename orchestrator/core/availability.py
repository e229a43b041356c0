"""Who can run an agent, and what a step that no live agent can run is waiting for (pure).

An agent's shown status is the stored one (active, inactive, draining) while a worker heartbeats
for it. Otherwise it is ``offline`` when a worker ran it and stopped, and ``unhosted`` when
nothing ever ran it, or when nothing alive could: an LLM agent runs only in a
`meowstik worker --remote` whose settings name an LLM (MEOWSTIK_LLM_BASE_URL), and such a worker
heartbeats every LLM agent, so an LLM agent that is not alive has no such worker. Neither
derived status is ever selected.

A queued step whose ranked candidate list is empty (no eligible agent is alive) waits with
``waitingFor: "agent"`` and a schedule deadline (MEOWSTIK_SCHEDULE_TIMEOUT_S); the reconciler
fails it with ``schedule_timeout_message`` when the deadline passes and still no eligible agent
exists. A step waiting for a busy eligible agent (``waitingFor: "capacity"``) never times out.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.core.models import AgentExecutor, RegisteredAgent
from orchestrator.core.statuses import AgentStatus

WAITING_FOR_CAPACITY = "capacity"  # every eligible agent is full
WAITING_FOR_AGENT = "agent"  # no eligible agent is alive: the schedule deadline runs
SCHEDULE_TIMEOUT_ERROR = "ScheduleTimeout"


def shown_status(
    stored: str, *, alive: bool, ever_hosted: bool, executor: AgentExecutor
) -> AgentStatus:
    """The status GET /agents shows: ``stored`` while alive, else offline or unhosted.

    Args:
        stored: what an operator or the registration set (active, inactive, draining).
        alive: a worker's heartbeat is current (``aliveUntil`` not passed).
        ever_hosted: some worker has run it (its record has an ``aliveUntil``).
        executor: what runs it; an LLM agent that is not alive has no LLM-capable worker.
    """
    if alive:
        return AgentStatus(stored)
    if executor == AgentExecutor.LLM or not ever_hosted:
        return AgentStatus.UNHOSTED
    return AgentStatus.OFFLINE


def unhosted_reason(agent_id: str, executor: AgentExecutor) -> str:
    """What would make an unhosted agent selectable (GET /agents ``waitingFor``)."""
    hosting = (
        f"a worker hosting this id (MEOWSTIK_AGENT_MODULES=... meowstik worker --agents {agent_id})"
    )
    if executor == AgentExecutor.LLM:
        return f"{hosting}, or a `meowstik worker --remote` with MEOWSTIK_LLM_BASE_URL set"
    if executor == AgentExecutor.HTTP:
        return f"a `meowstik worker --remote` to call its endpoint, or {hosting}"
    return hosting


def _why_not(agent: RegisteredAgent, agent_type: str | None, excluded: Sequence[str]) -> str:
    """Why one agent with the step's capabilities cannot take it now, in a few words."""
    if agent.id in excluded:
        return "the step already failed on it"
    if agent_type is not None and agent.type != agent_type:
        return f"type {agent.type!r}, the step needs {agent_type!r}"
    if agent.status != AgentStatus.ACTIVE:
        return agent.status.value
    if agent.circuit.state == "open":
        return f"circuit open until {agent.circuit.open_until}"
    return "eligible"


def schedule_timeout_message(
    step_id: str,
    capabilities: Sequence[str],
    agents: Sequence[RegisteredAgent],
    *,
    timeout_s: float,
    agent_type: str | None = None,
    excluded: Sequence[str] = (),
) -> str:
    """The error of a step no live agent took before its schedule deadline: what it needs,
    which agents have that and why none could run it, the timeout, and how to fix it.

    Args:
        agents: the registered agents that have every capability (any status).
    """
    needs = ", ".join(capabilities)
    if agents:
        listed = ", ".join(f"{a.id} ({_why_not(a, agent_type, excluded)})" for a in agents)
        have = f"agents with them: {listed}"
        hosting = (
            "start a worker hosting one "
            f"(MEOWSTIK_AGENT_MODULES=... meowstik worker --agents {agents[0].id})"
        )
    else:
        have = "no registered agent has them"
        hosting = "start a worker whose agent modules define them (MEOWSTIK_AGENT_MODULES)"
    kind = f" of type {agent_type!r}" if agent_type else ""
    return (
        f"no agent{kind} could run step {step_id!r} within {timeout_s:g} s "
        f"(MEOWSTIK_SCHEDULE_TIMEOUT_S): it needs [{needs}]; {have}. To run such steps, "
        f"{hosting}, set MEOWSTIK_LLM_BASE_URL for a `meowstik worker --remote` (LLM agents), "
        "or register an HTTP agent with these capabilities and an endpoint"
    )
