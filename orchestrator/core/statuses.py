"""Session and step statuses, their groups, and the one table of allowed step transitions."""

from __future__ import annotations

from enum import StrEnum


class SessionStatus(StrEnum):
    EXECUTING = "executing"
    WAITING_FOR_INPUT = "waiting_for_input"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    PENDING = "pending"  # waiting for the steps it depends on
    QUEUED = "queued"  # released: a message is on its queue
    RUNNING = "running"  # claimed by a worker holding a lease
    WAITING_FOR_INPUT = "waiting_for_input"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"  # a step it depends on failed (failure policy `continue`)
    CANCELLED = "cancelled"  # the session ended before the step started


class AgentStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    DRAINING = "draining"
    OFFLINE = "offline"  # derived: the worker that ran it stopped heartbeating
    UNHOSTED = "unhosted"  # derived: nothing ran it, or nothing alive could (core/availability.py)


# what an operator (or a registration) may set; the rest is derived from heartbeats
AGENT_DERIVED = frozenset({AgentStatus.OFFLINE, AgentStatus.UNHOSTED})
AGENT_SETTABLE = frozenset(AgentStatus) - AGENT_DERIVED

SESSION_TERMINAL = frozenset(
    {SessionStatus.COMPLETED, SessionStatus.FAILED, SessionStatus.CANCELLED}
)
SESSION_ACTIVE = frozenset(SessionStatus) - SESSION_TERMINAL
STEP_TERMINAL = frozenset(
    {StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED}
)
STEP_ACTIVE = frozenset({StepStatus.RUNNING, StepStatus.WAITING_FOR_INPUT})

# The Lua scripts in orchestrator/store/lua enforce the same table; tests/unit/test_statuses.py
# checks that every transition a script performs is listed here.
STEP_TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    StepStatus.PENDING: frozenset({StepStatus.QUEUED, StepStatus.SKIPPED, StepStatus.CANCELLED}),
    StepStatus.QUEUED: frozenset({StepStatus.RUNNING, StepStatus.CANCELLED, StepStatus.FAILED}),
    StepStatus.RUNNING: frozenset(
        {
            StepStatus.RUNNING,  # a redelivery takes over an expired lease
            StepStatus.QUEUED,  # retry after a retryable error
            StepStatus.PENDING,  # returned a sub-plan: waits for it, then runs again
            StepStatus.WAITING_FOR_INPUT,
            StepStatus.COMPLETED,
            StepStatus.FAILED,
        }
    ),
    StepStatus.WAITING_FOR_INPUT: frozenset(
        {StepStatus.QUEUED, StepStatus.FAILED, StepStatus.CANCELLED}
    ),
    StepStatus.COMPLETED: frozenset(),
    StepStatus.FAILED: frozenset(),
    StepStatus.SKIPPED: frozenset(),
    StepStatus.CANCELLED: frozenset(),
}
