"""The life of one step run, in domain terms: claim, build its input, record its outcome and
release its dependents, schedule a sub-plan it returned, or park it for operator input. The
failure path (retry, fallback, fail) is StepFailures (failures.py), which it holds. The Celery
task (workers/tasks.py) only adapts a message to these calls."""

from __future__ import annotations

import json
import secrets
from dataclasses import replace
from typing import Any

from orchestrator import tracing
from orchestrator.core.costs import reported_spending
from orchestrator.core.decomposition import ParentView, build_subplan, parse_subtasks
from orchestrator.core.errors import PermanentStepError, SubPlanError
from orchestrator.core.ids import job_id
from orchestrator.core.logentry import LogEntry, iso_from_ms
from orchestrator.core.models import PlanStep
from orchestrator.core.records import NewSubplan
from orchestrator.core.step_runs import Skip, StepRun
from orchestrator.core.steps import InputRequired, StepInput, StepResult
from orchestrator.engine.agent_logging import BoundLogger
from orchestrator.engine.agent_state import AgentState
from orchestrator.engine.budgets import Budgets
from orchestrator.engine.context import EngineContext
from orchestrator.engine.failures import StepFailures
from orchestrator.engine.outcomes import Outcomes
from orchestrator.engine.routing import Router
from orchestrator.engine.timeouts import StepTimeouts
from orchestrator.store.scripts import Transition
from orchestrator.store.turns import MS_PER_HOUR, hour_expires_at


class StepLifecycle:
    def __init__(
        self, context: EngineContext, router: Router, outcomes: Outcomes, budgets: Budgets
    ) -> None:
        self.context = context
        self.budgets = budgets
        self.router = router
        self.outcomes = outcomes
        self.sessions = context.sessions
        self.settings = context.settings
        self.failures = StepFailures(context, router, outcomes)
        self.timeouts = StepTimeouts(context, self.failures)

    def now_ms(self) -> int:
        return self.context.now_ms()

    def fail(self, run: StepRun, exc: BaseException) -> Transition:
        """The failure path: retry, fall back, or fail the step (see StepFailures)."""
        tracing.record_failure(exc)  # on the run's span, when traced
        return self.failures.fail(run, exc)

    def begin(
        self, session_id: str, step_id: str, agent_id: str, *, token: str | None = None
    ) -> StepRun | Skip:
        """Claim the step for ``agent_id`` and assemble its input (one round trip). A session
        paused on its budget (or that spent it) parks the step instead of starting it.

        ``token`` is the run's token when the caller chose it (a worker's main process gives
        each message one, so it can record the run's timeout if its pool process is killed);
        a random one otherwise."""
        token = token or secrets.token_hex(8)
        run = self._begin(session_id, step_id, agent_id, token)
        if isinstance(run, Skip) and run.reason == "budget":
            code = self.budgets.park_unstarted(session_id, step_id, agent_id)
            if code == "ok":  # the pause ended meanwhile
                return self._begin(session_id, step_id, agent_id, token)
            return Skip(f"budget:{code}")
        return run

    def _begin(self, session_id: str, step_id: str, agent_id: str, token: str) -> StepRun | Skip:
        started = LogEntry(
            "info",
            "task",
            "Step started",
            session_id=session_id,
            agent_id=agent_id,
            task_id=step_id,
        )
        now = self.now_ms()
        claim = self.sessions.claim(
            session_id,
            step_id,
            token=token,
            now_ms=now,
            lease_ms=self.context.lease_ms,
            agent_id=agent_id,
            logs=[started],
        )
        if claim.code == "leased":
            return Skip("leased", retry_after_s=int(claim.detail) / 1000 + 0.1)
        if claim.code in ("finished", "ended"):
            handed = self.sessions.release_slot(
                agent_id, session_id, step_id, now_ms=now, reserve_ms=self.context.reserve_ms
            )
            self.router.dispatch_handoffs(handed)
        if claim.code != "ok":
            return Skip(f"{claim.code}:{claim.detail}" if claim.detail else claim.code)
        step_input = StepInput(
            session_id=session_id,
            step_id=step_id,
            job_id=job_id(session_id, step_id),
            goal=claim.goal,
            step=PlanStep.model_validate_json(claim.step_json),
            agent_id=agent_id,
            attempt=claim.attempt,
            initial_context=json.loads(claim.initial_context_json),
            shared_state={key: json.loads(value) for key, value in claim.state},
            dependencies={dep: json.loads(output) for dep, output in claim.dependency_outputs},
            input_provided=claim.answer_json is not None,
            operator_input=json.loads(claim.answer_json) if claim.answer_json is not None else None,
            subtask_ids=claim.subtask_ids,
            decompositions=claim.decompositions,
            logger=BoundLogger(self.context, session_id, step_id, agent_id),
            state=AgentState(self.context.state, session_id, agent_id),
            workspace=self.context.workspace.bound(session_id),
        )
        return StepRun(
            token,
            agent_id,
            claim.queue,
            claim.attempt,
            claim.agent_attempt,
            claim.max_attempts,
            step_input,
        )

    def renew(self, run: StepRun) -> bool:
        until = self.now_ms() + self.context.lease_ms
        return self.sessions.renew_lease(
            run.session_id,
            run.step_id,
            token=run.token,
            lease_until_ms=until,
            agent_id=run.agent_id,
        )

    def succeed(
        self, run: StepRun, result: StepResult, usage: dict[str, Any] | None = None
    ) -> Transition:
        """Record the output (and the run's model ``usage``) exactly once, then route every
        dependent it released. A result with ``subtasks`` decomposes the step instead (see
        ``decompose``)."""
        if result.subtasks:
            return self.decompose(run, result.subtasks)
        try:
            reported = reported_spending(
                result.usage, result.cost_usd, f"agent {run.agent_id}'s reported spending"
            )
        except ValueError as exc:
            return self.fail(run, PermanentStepError(f"{exc}; report whole tokens and dollars"))
        if reported is not None:
            hour = self.now_ms() // MS_PER_HOUR
            reported["hourExpiresAt"] = str(hour_expires_at(hour, self.settings.cost_history_days))
        try:
            output_json = json.dumps(result.output, separators=(",", ":"), allow_nan=False)
            updates = {
                key: json.dumps(value, allow_nan=False)
                for key, value in result.state_updates.items()
            }
        except (TypeError, ValueError) as exc:
            error = PermanentStepError(
                f"agent {run.agent_id} returned an output that is not JSON-serialisable ({exc});"
                " return plain JSON values"
            )
            return self.fail(run, error)
        done = LogEntry(
            "info",
            "task",
            "Step completed",
            session_id=run.session_id,
            agent_id=run.agent_id,
            task_id=run.step_id,
        )
        transition = self.sessions.complete(
            run.session_id,
            run.step_id,
            token=run.token,
            now_ms=self.now_ms(),
            output_json=output_json,
            agent_id=run.agent_id,
            reserve_ms=self.context.reserve_ms,
            state_updates=updates,
            logs=[done],
            # the dependents this releases are routed in the same script: no second round trip
            route_policy=self.router.inline_policy(),
            rotation=self.router.release_rotation(),
            accounts_json=accounts_json(usage, reported),
        )
        self.outcomes.settle(run.session_id, transition)
        if transition.code == "ok" and transition.released:
            self._log_parents_released(run, transition.released)
            self.router.settle_released(run.session_id, transition)
        return transition

    def _log_parents_released(self, run: StepRun, released: list[tuple[str, dict]]) -> None:
        """Say so when a released step is a parent: all its subtasks finished."""
        for step_id, record in released:
            if record.get("subtasks"):
                self.sessions.log(
                    LogEntry(
                        "info",
                        "orchestrator",
                        "Subtasks finished; parent step released",
                        session_id=run.session_id,
                        task_id=step_id,
                        data={"subtasks": record["subtasks"], "releasedBy": run.step_id},
                    ),
                    self.now_ms(),
                )

    def decompose(self, run: StepRun, subtasks: list) -> Transition:
        """Schedule the sub-plan a run returned under its step, which waits for it and then runs
        again. An invalid or repeating sub-plan fails the run like any permanent error."""
        try:
            subplan = self._check_subplan(run, subtasks)
        except SubPlanError as exc:
            return self.fail(run, exc)
        expansion = self.sessions.expand(
            run.session_id,
            run.step_id,
            token=run.token,
            now_ms=self.now_ms(),
            reserve_ms=self.context.reserve_ms,
            subplan=subplan,
        )
        self.router.dispatch_handoffs(expansion.handed)
        if expansion.code == "conflict":
            message = f"sub-plan step id {expansion.detail!r} is already used in this session"
            return self.fail(run, SubPlanError(message + "; rename it"))
        if expansion.code != "ok":
            return Transition(code=expansion.code, detail=expansion.detail)
        self.sessions.log(
            LogEntry(
                "info",
                "task",
                f"Step decomposed into {len(subplan.top_ids)} subtasks",
                session_id=run.session_id,
                agent_id=run.agent_id,
                task_id=run.step_id,
                data={
                    "subtasks": list(subplan.top_ids),
                    "steps": [s.step_id for s in subplan.steps],
                    "fingerprint": subplan.fingerprint,
                    "subplan": run.step_input.decompositions + 1,
                },
            ),
            self.now_ms(),
        )
        settled = Transition(code=expansion.code, detail=expansion.detail)
        if expansion.released:  # the sub-plan's first steps: none routed in the script
            self.router.settle_released(
                run.session_id, replace(settled, released=expansion.released)
            )
        return settled

    def _check_subplan(self, run: StepRun, subtasks: list) -> NewSubplan:
        steps = parse_subtasks(run.step_id, subtasks)
        records = self.sessions.step_records(run.session_id, [run.step_id])
        record = records.get(run.step_id, {})
        ancestors: list[tuple[str, dict]] = []
        parent_id = record.get("parentId")
        while parent_id and len(ancestors) <= self.settings.max_plan_depth:
            found = self.sessions.step_records(run.session_id, [parent_id]).get(parent_id, {})
            ancestors.append((parent_id, found))
            parent_id = found.get("parentId")
        progress = self.sessions.progress(run.session_id) or {"totalTasks": 0}
        view = ParentView(run.step_id, record, ancestors, int(progress["totalTasks"]))
        agents = self.context.registry.list(self.now_ms())
        return build_subplan(view, steps, agents, self.settings)

    def await_input(self, run: StepRun, request: InputRequired) -> str:
        """Park the step until an operator answers: no slot, no message, no process held."""
        now = self.now_ms()
        timeout_s = request.timeout_s or self.settings.input_timeout_s
        document = {
            "question": request.question,
            "schema": request.schema,
            "requestedAt": iso_from_ms(now),
            "deadline": iso_from_ms(now + int(timeout_s * 1000)),
            "onTimeout": "default" if request.has_default else "fail",
        }
        if request.has_default:
            document["default"] = request.default
        entry = LogEntry(
            "info",
            "task",
            "Step waiting for input",
            session_id=run.session_id,
            agent_id=run.agent_id,
            task_id=run.step_id,
            data={"question": request.question, "deadline": document["deadline"]},
        )
        code, handed = self.sessions.inputs.await_input(
            run.session_id,
            run.step_id,
            token=run.token,
            now_ms=now,
            reserve_ms=self.context.reserve_ms,
            request_json=json.dumps(document, separators=(",", ":")),
            deadline_ms=now + int(timeout_s * 1000),
            logs=[entry],
        )
        self.router.dispatch_handoffs(handed)
        return code


def accounts_json(usage: dict[str, Any] | None, reported: dict[str, str] | None) -> str:
    """complete_step.lua's accounts argument: "" when the run spent nothing it knows of."""
    if not usage and not reported:
        return ""
    return json.dumps({"usage": usage, "reported": reported}, separators=(",", ":"))
