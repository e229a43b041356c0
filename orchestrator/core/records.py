"""What a session is made of when it is stored: the rows written at creation and when a step
adds a sub-plan, and the decoded record a snapshot is built from. Pure: no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

_COMPACT = (",", ":")
TRACE_CONTEXT_FIELDS = ("traceparent", "tracestate")  # session hash fields, W3C header names


@dataclass(frozen=True)
class NewStep:
    step_id: str
    step_json: str
    depends_on: tuple[str, ...]
    children: tuple[str, ...]
    queue: str
    parent_id: str | None
    title: str
    required_capabilities: tuple[str, ...]
    agent_type: str | None
    subtask_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewSubplanStep:
    step_id: str
    step_json: str
    depends_on: tuple[str, ...]
    children: tuple[str, ...]
    remaining: int  # dependencies not completed yet (the inherited ones are)
    parent_id: str
    title: str
    queue: str
    required_capabilities: tuple[str, ...]
    agent_type: str | None
    subtask_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewSubplan:
    """A sub-plan ready to store: its steps with session-wide ids, the ids of its top-level
    steps (the parent's new subtasks), its fingerprint and the document snapshots graft."""

    fingerprint: str
    top_ids: tuple[str, ...]
    steps: tuple[NewSubplanStep, ...]
    document_json: str


@dataclass(frozen=True)
class NewSession:
    session_id: str
    goal: str
    user_id: str | None
    chat_id: str | None
    created_at_ms: int
    plan_json: str
    initial_context_json: str
    metadata_json: str
    failure_policy: str
    max_attempts: int
    steps: tuple[NewStep, ...]
    retention_ms: int = 0
    # how long a step with no eligible live agent waits before it fails (0: forever); the
    # routing scripts read it from the session hash when they park such a step
    schedule_timeout_ms: int = 0
    budget_json: str = ""  # the "budget" field (orchestrator/core/budgets.py); "": none
    policy: str | None = None  # the selection policy the session named
    experiment: str | None = None  # the A/B experiment it joined, and its variant there
    variant: str | None = None
    agent_overrides_json: str = ""  # the "agentOverrides" field (capability -> agent); "": none
    callback_url: str | None = None  # POSTed the final summary when the session ends (webhook)
    # the W3C trace context of the request that submitted it (TRACE_CONTEXT_FIELDS, by name):
    # the parent of every step run's span (orchestrator/tracing.py); empty: not traced
    trace_context: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SessionRecord:
    """Everything stored about a session, decoded to plain Python values."""

    fields: dict[str, str]
    steps: dict[str, dict[str, Any]]
    results: dict[str, Any]
    depends: dict[str, list[str]]
    errors: list[dict[str, Any]] = field(default_factory=list)
    input_requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    subplans: list[dict[str, Any]] = field(default_factory=list)
    costs: dict[str, int] = field(default_factory=dict)  # Keys.costs counters
    routing: dict[str, dict[str, Any]] = field(default_factory=dict)  # Keys.routing, by step


def dumps(value: Any) -> str:
    return json.dumps(value, separators=_COMPACT)


def session_fields(new: NewSession) -> dict[str, str | int]:
    fields: dict[str, str | int] = {
        "sessionId": new.session_id,
        "status": "executing",
        "goal": new.goal,
        "createdAt": new.created_at_ms,
        "startTime": new.created_at_ms,
        "totalTasks": len(new.steps),
        "completedTasks": 0,
        "failedTasks": 0,
        "finishedTasks": 0,
        "plan": new.plan_json,
        "initialContext": new.initial_context_json,
        "metadata": new.metadata_json,
        "failurePolicy": new.failure_policy,
        "maxAttempts": new.max_attempts,
        "jobOrder": dumps([s.step_id for s in new.steps]),
        "retentionMs": new.retention_ms,
        "scheduleTimeoutMs": new.schedule_timeout_ms,
    }
    if new.user_id is not None:
        fields["userId"] = new.user_id
    if new.chat_id is not None:
        fields["chatId"] = new.chat_id
    if new.budget_json:
        fields["budget"] = new.budget_json
    if new.policy:
        fields["policy"] = new.policy
    if new.experiment and new.variant:
        fields["experiment"], fields["variant"] = new.experiment, new.variant
    if new.agent_overrides_json:
        fields["agentOverrides"] = new.agent_overrides_json
    if new.callback_url:
        fields["callbackUrl"] = new.callback_url
    fields.update(
        (name, value) for name, value in new.trace_context if name in TRACE_CONTEXT_FIELDS
    )
    return fields


def subplan_step_record(step: NewSubplanStep) -> str:
    record: dict[str, Any] = {
        "status": "pending",
        "attempts": 0,
        "queue": step.queue,
        "title": step.title,
        "caps": list(step.required_capabilities),
        "parentId": step.parent_id,
    }
    if step.agent_type:
        record["agentType"] = step.agent_type
    if step.subtask_ids:
        record["subtasks"] = list(step.subtask_ids)
    return dumps(record)


def initial_record(step: NewStep, new: NewSession) -> str:
    record: dict[str, Any] = {
        "status": "queued" if not step.depends_on else "pending",
        "attempts": 0,
        "queue": step.queue,
        "title": step.title,
        "caps": list(step.required_capabilities),
    }
    if step.agent_type:
        record["agentType"] = step.agent_type
    if not step.depends_on:
        record["queuedAt"] = new.created_at_ms
    if step.parent_id:
        record["parentId"] = step.parent_id
    if step.subtask_ids:
        record["subtasks"] = list(step.subtask_ids)
    return dumps(record)


def created_record(new: NewSession) -> SessionRecord:
    """The record ``new`` is stored as, before any step ran (what submit answers with)."""
    fields = {key: str(value) for key, value in session_fields(new).items()}
    return SessionRecord(
        fields=fields,
        steps={step.step_id: json.loads(initial_record(step, new)) for step in new.steps},
        results={},
        depends={step.step_id: list(step.depends_on) for step in new.steps},
    )
