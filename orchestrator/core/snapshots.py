"""The REST snapshot of a stored session (pure): the spec's shape, per-step states, and the plan
tree with the sub-plans its steps returned grafted under them."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.core.budgets import session_budget
from orchestrator.core.costs import figures, names_under, session_summary
from orchestrator.core.ids import job_id
from orchestrator.core.logentry import iso_from_ms
from orchestrator.core.models import (
    FailurePolicy,
    SessionSnapshot,
    StepErrorRecord,
    StepState,
    StepUsage,
    TaskPlan,
)
from orchestrator.core.records import SessionRecord
from orchestrator.core.statuses import SessionStatus


def graft_subplans(plan: dict[str, Any], subplans: list[dict[str, Any]]) -> dict[str, Any]:
    """The plan document with each sub-plan a step returned placed under that step's subtasks,
    so the snapshot's plan is the tree that actually runs (pure)."""
    by_id: dict[str, dict[str, Any]] = {}
    pending = list(plan["steps"])
    while pending:
        step = pending.pop()
        by_id[step["id"]] = step
        pending.extend(step.get("subtasks") or [])
    for subplan in subplans:
        parent = by_id.get(subplan["parentId"])
        if parent is None:
            continue
        parent.setdefault("subtasks", []).extend(subplan["steps"])
        pending = list(subplan["steps"])
        while pending:
            step = pending.pop()
            by_id[step["id"]] = step
            pending.extend(step.get("subtasks") or [])
    return plan


def build_snapshot(session_id: str, record: SessionRecord) -> SessionSnapshot:
    """Turn the stored record into the REST snapshot (pure)."""
    fields = record.fields
    order: list[str] = json.loads(fields["jobOrder"])
    spent = set(names_under(record.costs, "s"))
    steps = {}
    for step_id in order:
        rec = record.steps.get(step_id, {})
        steps[step_id] = StepState(
            step_id=step_id,
            job_id=job_id(session_id, step_id),
            title=rec.get("title", step_id),
            status=rec.get("status", "pending"),
            queue=rec.get("queue", ""),
            depends_on=record.depends.get(step_id, []),
            parent_id=rec.get("parentId"),
            subtask_ids=rec.get("subtasks") or [],
            decompositions=len(rec.get("subplans") or []),
            agent_id=rec.get("agentId"),
            attempts=int(rec.get("attempts", 0)),
            queued_at=iso_from_ms(rec.get("queuedAt")),
            started_at=iso_from_ms(rec.get("startedAt")),
            finished_at=iso_from_ms(rec.get("finishedAt")),
            error=rec.get("error"),
            waiting_for=rec.get("waitingFor"),
            schedule_deadline=iso_from_ms(rec.get("scheduleDeadline")),
            input_request=record.input_requests.get(step_id),
            failed_agents=rec.get("failedAgents") or [],
            usage=StepUsage.model_validate(rec["usage"]) if rec.get("usage") else None,
            cost=figures(record.costs, f"s|{step_id}|") if step_id in spent else None,
            routing=record.routing.get(step_id),
            round=rec.get("round"),
        )
    return SessionSnapshot(
        session_id=session_id,
        status=SessionStatus(fields["status"]),
        goal=fields["goal"],
        user_id=fields.get("userId"),
        chat_id=fields.get("chatId"),
        plan=TaskPlan.model_validate(graft_subplans(json.loads(fields["plan"]), record.subplans)),
        job_ids=[job_id(session_id, step_id) for step_id in order],
        completed_tasks=int(fields["completedTasks"]),
        failed_tasks=int(fields["failedTasks"]),
        total_tasks=int(fields["totalTasks"]),
        results={job_id(session_id, k): v for k, v in record.results.items()},
        errors=[StepErrorRecord.model_validate(e) for e in record.errors],
        start_time=iso_from_ms(int(fields["startTime"])) or "",
        end_time=iso_from_ms(int(fields["endTime"])) if fields.get("endTime") else None,
        failure_policy=FailurePolicy(fields["failurePolicy"]),
        metadata=json.loads(fields.get("metadata", "{}")),
        steps=steps,
        cost=session_summary(record.costs) if record.costs else None,
        policy=fields.get("policy"),
        experiment={"name": fields["experiment"], "variant": fields["variant"]}
        if fields.get("experiment") and fields.get("variant")
        else None,
        budget=session_budget(fields.get("budget"), fields.get("budgetPause"), record.costs),
        agent_overrides=json.loads(fields.get("agentOverrides") or "null"),
        round=int(fields["round"]) if fields.get("round") else None,
        callback_url=fields.get("callbackUrl"),
    )
