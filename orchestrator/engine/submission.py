"""Submission: goal -> plan -> validated graph -> stored session -> first steps routed. Steps
after the first are released by the workers (lifecycle.py). Also the dry run (``preview``)."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import replace

from orchestrator import tracing
from orchestrator.core.budgets import budget_document
from orchestrator.core.errors import (
    CallbackNotAllowedError,
    DispatchError,
    EndpointNotAllowedError,
    ReplicaAckTimeoutError,
    StoreUnavailableError,
    UnknownPolicyError,
)
from orchestrator.core.graph import (
    GraphNode,
    PlanGraph,
    check_metadata,
    json_size,
    limit_error,
    step_limit_problem,
)
from orchestrator.core.ids import capability_queue
from orchestrator.core.logentry import LogEntry
from orchestrator.core.models import (
    OrchestrateRequest,
    PlanPreview,
    RegisteredAgent,
    SessionSnapshot,
    StepPreview,
    TaskPlan,
)
from orchestrator.core.records import NewSession, NewStep, created_record
from orchestrator.core.registration import check_agent_endpoint
from orchestrator.core.snapshots import build_snapshot
from orchestrator.engine.context import EngineContext
from orchestrator.engine.experiments import Experiments
from orchestrator.engine.outcomes import Outcomes
from orchestrator.engine.routing import Routed, Router, RouteRequest
from orchestrator.planning.estimate import StepEstimate, estimate_plan
from orchestrator.planning.service import Planning, PlanOutcome
from orchestrator.planning.templates import load_templates
from orchestrator.store.idempotency import ClaimedKey

_COMPACT = (",", ":")
log = logging.getLogger(__name__)


def new_session_id(now_ms: int) -> str:
    """``orch-<ms>-<random>``, as in the spec's examples."""
    return f"orch-{now_ms}-{secrets.token_hex(4)}"


class Submission:
    def __init__(
        self,
        context: EngineContext,
        router: Router,
        outcomes: Outcomes,
        *,
        planning: Planning | None = None,
        experiments: Experiments | None = None,
    ) -> None:
        self.context = context
        self.experiments = experiments or Experiments(context)
        self.sessions = context.sessions
        self.registry = context.registry
        self.settings = context.settings
        self.router = router
        self.outcomes = outcomes
        self._planning = planning

    @property
    def planning(self) -> Planning:
        """The planners (templates are read on first use: processes that never plan skip it)."""
        if self._planning is None:
            templates = load_templates(self.settings.template_directories)
            self._planning = Planning(self.settings, templates)
        return self._planning

    def submit(
        self,
        request: OrchestrateRequest,
        session_id: str | None = None,
        claim: ClaimedKey | None = None,
    ) -> SessionSnapshot:
        """Plan, validate, store and start a session (with ``session_id`` when the caller chose
        it: new_session_id's, claimed for an idempotency key, ``claim``, kept with it).

        Raises:
            PlanError: the plan is invalid or needs capabilities no registered agent has (422).
            LimitExceededError: the goal or plan is over a configured limit (422).
            DispatchError: the broker did not take the first steps; the session is failed (503).
            ReplicaAckTimeoutError: stored and started, but too few replicas confirmed it in
                time (503; ``details.sessionId`` names it).
        """
        location = "body.callbackUrl"
        if request.callback_url is None:  # the user's default (MEOWSTIK_USER_CALLBACKS), if any
            location = "settings.MEOWSTIK_USER_CALLBACKS"
            request = request.model_copy(
                update={"callback_url": self.settings.default_callback(request.user_id)}
            )
        if request.callback_url is not None:
            try:
                allowed = check_agent_endpoint(request.callback_url, self.settings)
            except EndpointNotAllowedError as refused:
                raise CallbackNotAllowedError(refused, location) from None
            request = request.model_copy(update={"callback_url": allowed})
        sid = session_id or new_session_id(self.context.now_ms())
        tracing.annotate({"meowstik.session.id": sid})
        request, experiment, variant = self.experiments.assignment(request, sid)
        if request.policy is not None and request.policy not in self.context.policies:
            raise UnknownPolicyError(request.policy, self.context.policies.names())
        agents = self.registry.list(self.context.now_ms())
        outcome = self._plan(request, agents)
        plan, graph = outcome.plan, outcome.graph
        now = self.context.now_ms()
        new = self._new_session(request, plan, graph, now, sid)
        if experiment is not None and variant is not None:
            new = replace(new, experiment=experiment.name, variant=variant.name)
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
        try:
            self.sessions.create(
                new, logs=[*notes, created], grace_ms=self.context.reserve_ms, claim=claim
            )
        except ReplicaAckTimeoutError as unconfirmed:
            # it exists on the master: start it like any other (a retry with the key gets it)
            self._start_stored(new, agents)
            unconfirmed.details["sessionId"] = sid
            raise
        routed = self._start_stored(new, agents)
        return self._created_snapshot(new, routed)

    def preview(self, request: OrchestrateRequest) -> PlanPreview:
        """Plan and check a request without running it: the plan, its critical path and an
        estimated duration (plan estimates, else measured means per capability)."""
        outcome = self._plan(request, self.registry.list(self.context.now_ms()))
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

    def _plan(self, request: OrchestrateRequest, agents: list[RegisteredAgent]) -> PlanOutcome:
        self._check_limits(request)
        outcome = self.planning.plan(request, agents)
        if request.plan is None:  # a planner's steps (a client's were checked before planning)
            self._check_step_limits(outcome.plan.steps, "plan")
        return outcome

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
        self, request: OrchestrateRequest, plan: TaskPlan, graph: PlanGraph, now: int, sid: str
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
        budget = request.budget or self.settings.default_budget(request.user_id)
        return NewSession(
            session_id=sid,
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
            schedule_timeout_ms=int(self.settings.schedule_timeout_s * 1000),
            budget_json=budget_document(budget) if budget is not None else "",
            policy=request.policy,
            callback_url=request.callback_url,
            agent_overrides_json=(
                json.dumps(request.agent_overrides, separators=_COMPACT)
                if request.agent_overrides
                else ""
            ),
            trace_context=tuple(tracing.carrier().items()),  # the request's span, when traced
        )

    def _start_stored(self, new: NewSession, agents: list[RegisteredAgent]) -> list[Routed]:
        """Route the roots of a session just stored. Redis going away or refusing writes now
        (out of memory, MISCONF) does not undo the stored session: its roots have deadlines
        (SessionStore.create), so the reconciler routes them once Redis accepts writes again;
        the session is accepted with its roots waiting, and a client's retry makes no second
        one."""
        try:
            return self._dispatch_roots(new, agents)
        except StoreUnavailableError as exc:
            if not exc.retryable:
                raise
            log.warning("session %s stored; its roots wait for Redis: %s", new.session_id, exc)
            return []

    def _dispatch_roots(self, new: NewSession, agents: list[RegisteredAgent]) -> list[Routed]:
        """Route the steps without dependencies, ranking the agents read for planning (the
        registry is read once per submit; the routing script still checks room atomically)."""
        roots = [
            RouteRequest(step.step_id, step.required_capabilities, step.agent_type)
            for step in new.steps
            if not step.depends_on
        ]
        try:
            return self.router.route(
                new.session_id,
                roots,
                agents=agents,
                policy=new.policy or self.router.default_policy,
                overrides=json.loads(new.agent_overrides_json or "{}"),
            )
        except DispatchError as exc:
            for root in roots:
                self.outcomes.fail_step(
                    new.session_id,
                    root.step_id,
                    error_type="DispatchError",
                    message=exc.message,
                    entry=LogEntry(
                        "error",
                        "orchestrator",
                        "Step failed",
                        session_id=new.session_id,
                        task_id=root.step_id,
                        error=f"DispatchError: {exc.message}",
                    ),
                )
            exc.details["sessionId"] = new.session_id
            raise

    def _created_snapshot(self, new: NewSession, routed: list[Routed]) -> SessionSnapshot:
        """The 202 body, from what submit wrote and routed (no re-read of the session)."""
        record = created_record(new)
        for outcome in routed:
            step = record.steps[outcome.step_id]
            if outcome.agent_id is None:
                step["waitingFor"] = outcome.waiting_for
                if outcome.schedule_deadline_ms:
                    step["scheduleDeadline"] = outcome.schedule_deadline_ms
            else:
                step.update(agentId=outcome.agent_id, queue=outcome.queue)
        return build_snapshot(new.session_id, record)


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
