"""``Engine``: the one object the API and the tools talk to about sessions. It composes the
parts (submission, control, queries) over one context; each part is usable on its own."""

from __future__ import annotations

from typing import Any

from orchestrator.core.models import (
    BudgetRequest,
    OrchestrateRequest,
    PlanPreview,
    SessionSnapshot,
    SessionSummary,
)
from orchestrator.engine.budgets import Budgets
from orchestrator.engine.context import EngineContext
from orchestrator.engine.control import Control
from orchestrator.engine.experiments import Experiments
from orchestrator.engine.idempotency import Idempotency
from orchestrator.engine.outcomes import Outcomes
from orchestrator.engine.queries import Queries
from orchestrator.engine.routing import Router
from orchestrator.engine.session_state import SessionState
from orchestrator.engine.submission import Submission
from orchestrator.engine.webhooks import Webhooks
from orchestrator.planning.service import Planning


class Engine:
    def __init__(
        self,
        context: EngineContext,
        router: Router,
        outcomes: Outcomes,
        *,
        planning: Planning | None = None,
    ) -> None:
        self.context = context
        self.sessions = context.sessions
        self.registry = context.registry
        self.settings = context.settings
        self.router = router
        self.queries = Queries(context)
        self.budgets = Budgets(context, router, outcomes)
        self.control = Control(context, router, outcomes, self.queries, self.budgets)
        self.experiments = Experiments(context)
        self.submission = Submission(
            context, router, outcomes, planning=planning, experiments=self.experiments
        )
        self.state = SessionState(context, self.queries)
        self.idempotency = Idempotency(context, self.submission, self.queries)
        self.webhooks = Webhooks(context)  # reads deliveries; workers deliver

    @property
    def planning(self) -> Planning:
        return self.submission.planning

    def now_ms(self) -> int:
        return self.context.now_ms()

    # --- submission ---------------------------------------------------------------------------
    def submit(self, request: OrchestrateRequest) -> SessionSnapshot:
        return self.submission.submit(request)

    def submit_once(
        self, request: OrchestrateRequest, key: str, user_id: str | None
    ) -> tuple[SessionSnapshot, bool]:
        """Submit under an Idempotency-Key: (the session, whether it is a replay of an earlier
        submit with the same key and body)."""
        return self.idempotency.submit(request, key, user_id)

    def preview(self, request: OrchestrateRequest) -> PlanPreview:
        return self.submission.preview(request)

    # --- queries ------------------------------------------------------------------------------
    def snapshot(self, session_id: str) -> SessionSnapshot:
        return self.queries.snapshot(session_id)

    def session_owner(self, session_id: str) -> str | None:
        return self.queries.owner(session_id)

    def progress(self, session_id: str) -> dict[str, Any]:
        return self.queries.progress(session_id)

    def list_sessions(
        self, *, user_id: str | None, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[SessionSummary], str | None]:
        return self.queries.list_sessions(
            user_id=user_id, status=status, limit=limit, cursor=cursor
        )

    # --- control ------------------------------------------------------------------------------
    def retry(self, session_id: str) -> SessionSnapshot:
        return self.control.retry(session_id)

    def cancel(self, session_id: str) -> SessionSnapshot:
        return self.control.cancel(session_id)

    def provide_input(self, session_id: str, step_id: str, value: Any) -> SessionSnapshot:
        return self.control.provide_input(session_id, step_id, value)

    def change_budget(
        self, session_id: str, change: BudgetRequest, *, by: str = "operator"
    ) -> SessionSnapshot:
        """New limits for a running session; a budget pause they leave room for ends."""
        self.budgets.change(session_id, change, by=by)
        return self.snapshot(session_id)

    def resume(self, session_id: str, step_id: str, value: Any, *, by: str) -> None:
        self.control.resume(session_id, step_id, value, by=by)

    def update_context(
        self, session_id: str, values: dict[str, Any], *, who: str = "operator"
    ) -> dict[str, Any]:
        return self.control.update_context(session_id, values, who=who)

    def revoke_step(self, session_id: str, step_id: str, *, terminate: bool) -> None:
        self.control.revoke_step(session_id, step_id, terminate=terminate)
