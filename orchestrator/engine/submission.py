"""Submission and inspection of sessions: goal -> plan -> validated graph -> stored session ->
first steps dispatched. Steps after the first are released by the workers (execution.py)."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import jsonschema

from orchestrator.core.errors import (
    ContextKeyError,
    CursorError,
    DispatchError,
    InputValidationError,
    SessionFinishedError,
    SessionNotFoundError,
    StepFinishedError,
    StepNotWaitingError,
    TaskNotFoundError,
)
from orchestrator.core.graph import (
    GraphNode,
    PlanGraph,
    check_metadata,
    json_size,
    limit_error,
    step_limit_problem,
)
from orchestrator.core.ids import capability_queue, job_id
from orchestrator.core.logentry import LogEntry, iso_from_ms
from orchestrator.core.models import (
    OrchestrateRequest,
    PlanPreview,
    SessionSnapshot,
    SessionSummary,
    StepError,
    StepPreview,
    TaskPlan,
)
from orchestrator.core.records import NewSession, NewStep
from orchestrator.core.snapshots import build_snapshot
from orchestrator.core.statuses import SESSION_TERMINAL, STEP_TERMINAL
from orchestrator.engine.routing import Router, RouteRequest
from orchestrator.planning.estimate import StepEstimate, estimate_plan
from orchestrator.planning.service import Planning, PlanOutcome
from orchestrator.planning.templates import load_templates

_COMPACT = (",", ":")
CONTEXT_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def _object_size(encoded: dict[str, str]) -> int:
    """Bytes of the JSON object whose members are ``encoded`` (key -> JSON text), compact."""
    members = [f"{json.dumps(key, ensure_ascii=False)}:{value}" for key, value in encoded.items()]
    return len(("{" + ",".join(members) + "}").encode())


def new_session_id(now_ms: int) -> str:
    """``orch-<ms>-<random>``, as in the spec's examples."""
    return f"orch-{now_ms}-{secrets.token_hex(4)}"


class Engine:
    def __init__(
        self,
        router: Router,
        *,
        planning: Planning | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.router = router
        self.sessions = router.sessions
        self.registry = router.registry
        self.settings = router.settings
        self._planning = planning
        self._clock = clock

    @property
    def planning(self) -> Planning:
        """The planners (templates are read on first use: processes that never plan skip it)."""
        if self._planning is None:
            templates = load_templates(self.settings.template_directories)
            self._planning = Planning(self.settings, templates)
        return self._planning

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def submit(self, request: OrchestrateRequest) -> SessionSnapshot:
        """Plan, validate, store and start a session.

        Raises:
            PlanError: the plan is invalid or needs capabilities no registered agent has (422).
            LimitExceededError: the goal or plan is over a configured limit (422).
            DispatchError: the broker did not take the first steps; the session is failed (503).
        """
        outcome = self._plan(request)
        plan, graph = outcome.plan, outcome.graph
        now = self.now_ms()
        new = self._new_session(request, plan, graph, now)
        subtasks = {sid: list(n.subtask_ids) for sid, n in graph.nodes.items() if n.subtask_ids}
        created = LogEntry(
            "info",
            "orchestrator",
            f"Session created with {len(new.steps)} steps",
            session_id=new.session_id,
            data={
                "goal": request.goal,
                "roots": graph.roots,
                "planner": plan.planner,
                "template": plan.template,
                "subtasks": subtasks,
            },
        )
        sid = new.session_id
        notes = [
            LogEntry(note.level, "orchestrator", note.message, session_id=sid, data=note.data)
            for note in outcome.notes
        ]
        self.sessions.create(new, logs=[*notes, created], grace_ms=self.router.reserve_ms)
        self._dispatch_roots(new)
        return self.snapshot(new.session_id)

    def preview(self, request: OrchestrateRequest) -> PlanPreview:
        """Plan and check a request without running it: the plan, its critical path and an
        estimated duration (plan estimates, else measured means per capability)."""
        outcome = self._plan(request)
        estimate = estimate_plan(outcome.graph, self.sessions.mean_step_seconds())
        return PlanPreview(
            plan=outcome.plan,
            total_steps=len(outcome.graph.nodes),
            critical_path=estimate.critical_path,
            estimated_duration_s=estimate.duration_s,
            steps_without_estimate=estimate.unknown,
            steps={
                step_id: step_preview(outcome.graph.nodes[step_id], e)
                for step_id, e in estimate.steps.items()
            },
            notes=[{"level": n.level, "message": n.message, "data": n.data} for n in outcome.notes],
        )

    def _plan(self, request: OrchestrateRequest) -> PlanOutcome:
        self._check_limits(request)
        outcome = self.planning.plan(request, self.registry.list(self.now_ms()))
        if request.plan is None:  # a planner's steps (a client's were checked before planning)
            self._check_step_limits(outcome.plan.steps, "plan")
        return outcome

    def progress(self, session_id: str) -> dict[str, Any]:
        """Status and step counters only (one round trip). Raises SessionNotFoundError."""
        progress = self.sessions.progress(session_id)
        if progress is None:
            raise SessionNotFoundError(session_id)
        return progress

    def snapshot(self, session_id: str) -> SessionSnapshot:
        record = self.sessions.read(session_id)
        if record is None:
            raise SessionNotFoundError(session_id)
        return build_snapshot(session_id, record)

    def cancel(self, session_id: str) -> SessionSnapshot:
        """Cancel a session: nothing starts afterwards, running steps are revoked and their
        results refused. Cancelling a cancelled session changes nothing.

        Raises:
            SessionNotFoundError: no such session (404).
            SessionFinishedError: it already completed or failed (409).
        """
        now = self.now_ms()
        entry = LogEntry("warn", "orchestrator", "Session cancelled", session_id=session_id)
        result = self.sessions.cancel(
            session_id, now_ms=now, reserve_ms=self.router.reserve_ms, logs=[entry]
        )
        if result.code == "missing":
            raise SessionNotFoundError(session_id)
        if result.code == "finished":
            raise SessionFinishedError(session_id, result.detail)
        self.router.dispatch_handoffs(result.handed)
        self.router.note_end(session_id, "cancelled")
        if result.running:
            self.router.dispatcher.revoke([job_id(session_id, s) for s in result.running])
        return self.snapshot(session_id)

    def provide_input(self, session_id: str, step_id: str, value: Any) -> SessionSnapshot:
        """Answer a step waiting for operator input; it runs again with the answer.

        Raises:
            SessionNotFoundError (404), SessionFinishedError or StepNotWaitingError (409),
            InputValidationError (422): the value breaks the schema the step asked for.
        """
        snapshot = self.snapshot(session_id)
        request = self.sessions.input_request(session_id, step_id)
        if request is None:
            if snapshot.status in SESSION_TERMINAL:
                raise SessionFinishedError(session_id, snapshot.status)
            status = snapshot.steps[step_id].status if step_id in snapshot.steps else "unknown"
            raise StepNotWaitingError(session_id, step_id, status)
        if request.get("schema"):
            check_answer(step_id, value, request["schema"])
        self.resume(session_id, step_id, value, by="operator")
        return self.snapshot(session_id)

    def resume(self, session_id: str, step_id: str, value: Any, *, by: str) -> None:
        """Record an answer (an operator's, or the default at the deadline) and route the step."""
        entry = LogEntry(
            "info",
            "orchestrator",
            "Step input received",
            session_id=session_id,
            task_id=step_id,
            data={"by": by},
        )
        code, result = self.sessions.provide_input(
            session_id,
            step_id,
            now_ms=self.now_ms(),
            answer_json=json.dumps(value, separators=(",", ":"), allow_nan=False),
            reserve_ms=self.router.reserve_ms,
            by=by,
            logs=[entry],
        )
        if code == "ended":
            raise SessionFinishedError(session_id, str(result))
        if code == "not_waiting":
            raise StepNotWaitingError(session_id, step_id, str(result))
        self.router.route(session_id, [RouteRequest.from_record(step_id, result)])

    def list_sessions(
        self, *, user_id: str | None, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[SessionSummary], str | None]:
        """Sessions newest first, filtered by user and status, a page at a time."""
        page, next_cursor = self.sessions.index.list_page(
            user_id=user_id, status=status, limit=limit, cursor=decode_cursor(cursor)
        )
        summaries = [
            SessionSummary(
                session_id=row["sessionId"],
                status=row["status"],
                goal=row.get("goal", ""),
                user_id=row.get("userId"),
                chat_id=row.get("chatId"),
                completed_tasks=int(row.get("completedTasks", 0)),
                failed_tasks=int(row.get("failedTasks", 0)),
                total_tasks=int(row.get("totalTasks", 0)),
                start_time=iso_from_ms(int(row["startTime"])) or "",
                end_time=iso_from_ms(int(row["endTime"])) if row.get("endTime") else None,
            )
            for row in page
        ]
        return summaries, f"{next_cursor[0]}:{next_cursor[1]}" if next_cursor else None

    def update_context(self, session_id: str, values: dict[str, Any]) -> dict[str, Any]:
        """Merge ``values`` into the session's shared state; steps that start afterwards see
        it. Returns the whole shared state."""
        snapshot = self.snapshot(session_id)
        if snapshot.status in SESSION_TERMINAL:
            raise SessionFinishedError(session_id, snapshot.status)
        bad = sorted(key for key in values if not CONTEXT_KEY.match(key))
        if bad:
            raise ContextKeyError(bad)
        encoded = {
            key: json.dumps(value, separators=(",", ":"), allow_nan=False)
            for key, value in values.items()
        }
        self._check_context_size(session_id, encoded)
        self.sessions.log(
            LogEntry(
                "info",
                "orchestrator",
                "Context updated",
                session_id=session_id,
                data={"keys": sorted(values)},
            ),
            self.now_ms(),
        )
        return self.sessions.merge_context(session_id, encoded)

    def _check_context_size(self, session_id: str, encoded: dict[str, str]) -> None:
        """Refuse a merge that would make the shared context (as compact JSON) larger than
        MEOWSTIK_MAX_CONTEXT_BYTES. Checked before writing: a concurrent merge may pass the
        same check, so the bound holds per request, not across racing requests."""
        limit = self.settings.max_context_bytes
        added = _object_size(encoded)
        if added > limit:
            raise limit_error(
                "body", "context update bytes", limit, added, "MEOWSTIK_MAX_CONTEXT_BYTES"
            )
        merged = self.sessions.context_fields(session_id)
        merged.update(encoded)
        size = _object_size(merged)
        if size > limit:
            raise limit_error(
                "body", "merged context bytes", limit, size, "MEOWSTIK_MAX_CONTEXT_BYTES"
            )

    def _check_limits(self, request: OrchestrateRequest) -> None:
        """The request's own sizes, before any planning: goal, initialContext, metadata, and a
        client plan's subtasks and parameters per step.

        Raises:
            LimitExceededError: over a limit; ``details.location`` names the field (422).
        """
        settings = self.settings
        if len(request.goal) > settings.max_goal_chars:
            raise limit_error(
                "body.goal",
                "goal length",
                settings.max_goal_chars,
                len(request.goal),
                "MEOWSTIK_MAX_GOAL_CHARS",
            )
        context_bytes = json_size(request.initial_context)
        if context_bytes > settings.max_context_bytes:
            raise limit_error(
                "body.initialContext",
                "initialContext bytes",
                settings.max_context_bytes,
                context_bytes,
                "MEOWSTIK_MAX_CONTEXT_BYTES",
            )
        check_metadata(request.metadata, settings, "body.metadata")
        if request.plan is not None:
            self._check_step_limits(request.plan.steps, "body.plan")

    def _check_step_limits(self, steps: list, root: str) -> None:
        problem = step_limit_problem(
            steps,
            max_subtasks=self.settings.max_subtasks_per_step,
            max_parameters_bytes=self.settings.max_step_parameters_bytes,
        )
        if problem is None:
            return
        setting = (
            "MEOWSTIK_MAX_SUBTASKS_PER_STEP"
            if problem.what == "subtasks"
            else "MEOWSTIK_MAX_STEP_PARAMETERS_BYTES"
        )
        raise limit_error(
            f"{root}.{problem.location}",
            f"step {problem.step_id!r} {problem.what}",
            problem.limit,
            problem.actual,
            setting,
            stepId=problem.step_id,
        )

    def _new_session(
        self, request: OrchestrateRequest, plan: TaskPlan, graph: PlanGraph, now: int
    ) -> NewSession:
        steps = tuple(
            NewStep(
                step_id=node.id,
                step_json=node.step.model_copy(update={"subtasks": []}).model_dump_json(
                    by_alias=True
                ),
                depends_on=node.depends_on,
                children=node.children,
                queue=capability_queue(node.step.required_capabilities[0]),
                parent_id=node.parent_id,
                title=node.step.title,
                required_capabilities=tuple(node.step.required_capabilities),
                agent_type=node.step.agent_type,
                subtask_ids=node.subtask_ids,
            )
            for node in graph.nodes.values()
        )
        return NewSession(
            session_id=new_session_id(now),
            goal=request.goal,
            user_id=request.user_id,
            chat_id=request.chat_id,
            created_at_ms=now,
            plan_json=plan.model_dump_json(by_alias=True),
            initial_context_json=json.dumps(request.initial_context, separators=_COMPACT),
            metadata_json=json.dumps(request.metadata, separators=_COMPACT),
            failure_policy=request.failure_policy.value,
            max_attempts=request.max_attempts or self.settings.step_max_attempts,
            steps=steps,
            retention_ms=self.settings.session_retention_s * 1000,
        )

    def _dispatch_roots(self, new: NewSession) -> None:
        roots = [
            RouteRequest(step.step_id, step.required_capabilities, step.agent_type)
            for step in new.steps
            if not step.depends_on
        ]
        try:
            self.router.route(new.session_id, roots)
        except DispatchError as exc:
            step_ids = [root.step_id for root in roots]
            self._fail_unowned(new.session_id, step_ids, "DispatchError", exc.message)
            exc.details["sessionId"] = new.session_id
            raise

    def revoke_step(self, session_id: str, step_id: str, *, terminate: bool) -> None:
        """Stop one step (Flower's revoke): it fails with a message saying an operator revoked
        it, the session's failure policy applies, and a running copy is terminated when asked.

        Raises:
            TaskNotFoundError (404): no such session or step. StepFinishedError (409).
        """
        try:
            snapshot = self.snapshot(session_id)
        except SessionNotFoundError as exc:
            raise TaskNotFoundError(job_id(session_id, step_id)) from exc
        state = snapshot.steps.get(step_id)
        if state is None:
            raise TaskNotFoundError(job_id(session_id, step_id))
        if state.status in STEP_TERMINAL:
            raise StepFinishedError(session_id, step_id, state.status)
        message = "revoked by an operator (POST /api/task/revoke)"
        self._fail_unowned(session_id, [step_id], "Revoked", message)
        if terminate and state.status == "running":
            self.router.dispatcher.revoke([job_id(session_id, step_id)])

    def _fail_unowned(
        self, session_id: str, step_ids: list[str], error_type: str, message: str
    ) -> None:
        """Fail steps no run owns right now (never dispatched, or revoked), as the record's
        owner rather than a run: the failure policy applies, freed slots are handed on."""
        now = self.now_ms()
        for step_id in step_ids:
            error = StepError(
                step_id=step_id,
                job_id=job_id(session_id, step_id),
                error_type=error_type,
                message=message,
                attempt=0,
                timestamp=iso_from_ms(now) or "",
            )
            transition = self.sessions.fail(
                session_id,
                step_id,
                token="",
                now_ms=now,
                message=message,
                error_json=error.model_dump_json(by_alias=True),
                reserve_ms=self.router.reserve_ms,
                logs=[
                    LogEntry(
                        "error",
                        "orchestrator",
                        "Step failed",
                        session_id=session_id,
                        task_id=step_id,
                        error=f"{error_type}: {message}",
                    )
                ],
            )
            self.router.dispatch_handoffs(transition.handed)
            if transition.ended:
                self.router.note_end(session_id, transition.session_status)


def step_preview(node: GraphNode, estimate: StepEstimate) -> StepPreview:
    return StepPreview(
        title=node.step.title,
        depends_on=list(node.depends_on),
        parent_id=node.parent_id,
        required_capabilities=node.step.required_capabilities,
        estimate_s=estimate.estimate_s,
        estimate_source=estimate.source,
        earliest_start_s=estimate.earliest_start_s,
        earliest_finish_s=estimate.earliest_finish_s,
        slack_s=estimate.slack_s,
    )


def decode_cursor(cursor: str | None) -> tuple[int, str] | None:
    """ "<ms>:<session id>" from a previous page, or None. Raises CursorError when malformed."""
    if not cursor:
        return None
    score, _, session_id = cursor.partition(":")
    if not score.isdigit() or not session_id:
        raise CursorError(cursor)
    return int(score), session_id


def check_answer(step_id: str, value: Any, schema: dict[str, Any]) -> None:
    """Validate an operator's answer against the JSON Schema the step asked with."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = [
        {
            "location": "value" + "".join(f".{part}" for part in error.absolute_path),
            "message": error.message,
        }
        for error in validator.iter_errors(value)
    ]
    if errors:
        raise InputValidationError(step_id, errors)
