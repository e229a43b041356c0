"""Steering a running session: cancel it, answer a step's operator-input request (or apply
its default at the deadline), merge into its shared context, revoke one step."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

from orchestrator.core.errors import (
    ContextKeyError,
    InputValidationError,
    SessionFinishedError,
    SessionNotFoundError,
    SessionNotRetryableError,
    StepFinishedError,
    StepNotWaitingError,
    TaskNotFoundError,
)
from orchestrator.core.graph import limit_error
from orchestrator.core.ids import job_id
from orchestrator.core.logentry import LogEntry
from orchestrator.core.models import SessionSnapshot
from orchestrator.core.statuses import SESSION_TERMINAL, STEP_TERMINAL
from orchestrator.engine.budgets import Budgets
from orchestrator.engine.context import EngineContext
from orchestrator.engine.outcomes import Outcomes
from orchestrator.engine.queries import Queries
from orchestrator.engine.routing import Router, RouteRequest

CONTEXT_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def _object_size(encoded: dict[str, str]) -> int:
    """Bytes of the JSON object whose members are ``encoded`` (key -> JSON text), compact."""
    members = [f"{json.dumps(key, ensure_ascii=False)}:{value}" for key, value in encoded.items()]
    return len(("{" + ",".join(members) + "}").encode())


class Control:
    def __init__(
        self,
        context: EngineContext,
        router: Router,
        outcomes: Outcomes,
        queries: Queries,
        budgets: Budgets,
    ) -> None:
        self.context = context
        self.budgets = budgets
        self.sessions = context.sessions
        self.settings = context.settings
        self.router = router
        self.outcomes = outcomes
        self.snapshot = queries.snapshot

    def cancel(self, session_id: str) -> SessionSnapshot:
        """Cancel a session: nothing starts afterwards, running steps are revoked and their
        results refused. Cancelling a cancelled session changes nothing.

        Raises:
            SessionNotFoundError: no such session (404).
            SessionFinishedError: it already completed or failed (409).
        """
        now = self.context.now_ms()
        entry = LogEntry("warn", "orchestrator", "Session cancelled", session_id=session_id)
        result = self.sessions.cancel(
            session_id, now_ms=now, reserve_ms=self.context.reserve_ms, logs=[entry]
        )
        if result.code == "missing":
            raise SessionNotFoundError(session_id)
        if result.code == "finished":
            raise SessionFinishedError(session_id, result.detail)
        self.router.dispatch_handoffs(result.handed)
        self.outcomes.note_end(session_id, "cancelled")
        if result.running:
            self.context.dispatcher.revoke([job_id(session_id, s) for s in result.running])
        return self.snapshot(session_id)

    def retry(self, session_id: str) -> SessionSnapshot:
        """Run a failed or cancelled session's failed, skipped and cancelled steps again in the
        same session (its next round); completed steps keep their results and cost and do not
        run again. What became ready is routed now; the rest as its dependencies complete.

        Raises:
            SessionNotFoundError: no such session (404).
            SessionNotRetryableError: it is running or completed, or nothing in it failed (409).
        """
        result = self.sessions.retry(session_id, now_ms=self.context.now_ms())
        if result.code == "missing":
            raise SessionNotFoundError(session_id)
        if result.code != "ok":
            raise SessionNotRetryableError(session_id, result.detail)
        self.context.log(
            LogEntry(
                "info",
                "orchestrator",
                f"Session retried (round {result.round})",
                session_id=session_id,
                data={"round": result.round, "steps": result.reset, "ready": result.queued},
            )
        )
        if result.queued:
            records = {s: self.sessions.step_record(session_id, s) for s in result.queued}
            requests = [RouteRequest.from_record(s, r) for s, r in records.items() if r]
            self.router.route(session_id, requests)
        return self.snapshot(session_id)

    def provide_input(self, session_id: str, step_id: str, value: Any) -> SessionSnapshot:
        """Answer a step waiting for operator input; it runs again with the answer.

        Raises:
            SessionNotFoundError (404), SessionFinishedError or StepNotWaitingError (409),
            InputValidationError (422): the value breaks the schema the step asked for.
        """
        snapshot = self.snapshot(session_id)
        request = self.sessions.inputs.input_request(session_id, step_id)
        if request is None:
            if snapshot.status in SESSION_TERMINAL:
                raise SessionFinishedError(session_id, snapshot.status)
            status = snapshot.steps[step_id].status if step_id in snapshot.steps else "unknown"
            raise StepNotWaitingError(session_id, step_id, status)
        if request.get("schema"):
            check_answer(step_id, value, request["schema"])
        if request.get("reason") == "budget":  # the session's question, not the step's
            self.budgets.answer(session_id, value, by="operator")
        else:
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
        code, result = self.sessions.inputs.provide_input(
            session_id,
            step_id,
            now_ms=self.context.now_ms(),
            answer_json=json.dumps(value, separators=(",", ":"), allow_nan=False),
            reserve_ms=self.context.reserve_ms,
            by=by,
            logs=[entry],
        )
        if code == "ended":
            raise SessionFinishedError(session_id, str(result))
        if code != "ok" or not isinstance(result, dict):  # "not_waiting": result is its status
            raise StepNotWaitingError(session_id, step_id, str(result))
        self.router.route(session_id, [RouteRequest.from_record(step_id, result)])

    def update_context(
        self, session_id: str, values: dict[str, Any], *, who: str = "operator"
    ) -> dict[str, Any]:
        """Merge ``values`` into the session's shared state: one State Manager write (each key
        versioned and logged, all or nothing); steps that start afterwards see it. Returns the
        whole shared state."""
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
            self.context.now_ms(),
        )
        state = self.context.state
        changes = [state.change("shared", key, value) for key, value in values.items()]
        state.write(session_id, changes, who=who)
        return {
            key: entry.value
            for key, entry in state.scopes(session_id, agent_ids=[])["shared"].items()
        }

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
        self.outcomes.fail_step(
            session_id,
            step_id,
            error_type="Revoked",
            message=message,
            entry=LogEntry(
                "error",
                "orchestrator",
                "Step failed",
                session_id=session_id,
                task_id=step_id,
                error=f"Revoked: {message}",
            ),
        )
        if terminate and state.status == "running":
            self.context.dispatcher.revoke([job_id(session_id, step_id)])


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
