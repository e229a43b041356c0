"""The domain's exception tree. Every error carries its data as attributes and a message that
says what failed, the bad value, and how to fix it.

    OrchestratorError
    ├── PlanError                  invalid plan (422): details name the offending steps
    │   ├── DuplicateStepError
    │   ├── UnknownDependencyError
    │   ├── CycleError
    │   ├── UnroutableStepError    no registered agent has every required capability
    │   ├── PlanDepthError         subtasks nested deeper than MEOWSTIK_MAX_PLAN_DEPTH
    │   ├── TemplateError          a workflow template that is unknown or broken
    │   ├── TemplateParameterError a template parameter with no value, or the wrong type
    │   └── PlannerChoiceError     planner, template and plan that contradict each other
    ├── LimitExceededError         a request over a configured limit (422)
    ├── SessionNotFoundError       (404)
    ├── SessionFinishedError       the session already ended (409)
    ├── StepNotWaitingError        an answer for a step that asked nothing (409)
    ├── StepFinishedError          revoking a step that already ended (409)
    ├── TaskNotFoundError          a Flower-style task id that names no step (404)
    ├── InputValidationError       an answer that breaks the step's JSON schema (422)
    ├── AgentNotFoundError         (404)
    ├── StoreUnavailableError      Redis unreachable (503)
    ├── DispatchError              broker refused or timed out a publish (503)
    ├── (state manager errors: StateValidationError, StateConflictError, LockTimeoutError, ...
    │    in orchestrator/store/state.py, transactions.py and state_values.py)
    └── StepError                  raised by an agent's work
        ├── RetryableStepError     retried with backoff, then the step fails
        └── PermanentStepError     the step fails at once
            └── SubPlanError       a sub-plan a step returned is invalid or too big or deep
                └── ReplanLoopError  ... or repeats one it or an ancestor returned before
"""

from __future__ import annotations

from typing import Any


class OrchestratorError(Exception):
    code = "orchestrator_error"
    http_status = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class PlanError(OrchestratorError):
    code = "invalid_plan"
    http_status = 422


class DuplicateStepError(PlanError):
    code = "duplicate_step_id"

    def __init__(self, step_ids: list[str]) -> None:
        self.step_ids = step_ids
        super().__init__(
            "step ids must be unique across the plan and its subtasks; duplicated: "
            f"{', '.join(step_ids)}. Rename the repeated steps.",
            details={"stepIds": step_ids},
        )


class UnknownDependencyError(PlanError):
    code = "unknown_dependency"

    def __init__(self, missing: dict[str, list[str]]) -> None:
        self.missing = missing
        listed = "; ".join(f"{step} -> {', '.join(deps)}" for step, deps in missing.items())
        super().__init__(
            f"dependsOn names steps that are not in the plan ({listed}). "
            "Add those steps or remove them from dependsOn.",
            details={"missing": missing},
        )


class CycleError(PlanError):
    code = "dependency_cycle"

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(
            f"the plan's dependencies form a cycle: {' -> '.join(cycle)}. "
            "Remove one of these dependsOn links.",
            details={"cycle": cycle},
        )


class UnroutableStepError(PlanError):
    code = "unroutable_step"

    def __init__(self, unroutable: dict[str, list[str]], known_capabilities: list[str]) -> None:
        self.unroutable = unroutable
        listed = "; ".join(f"{step} needs {', '.join(caps)}" for step, caps in unroutable.items())
        super().__init__(
            f"no registered agent has every capability these steps require ({listed}). "
            "Register an agent with them (GET /api/orchestrator/agents lists what exists) "
            "or change requiredCapabilities/agentType.",
            details={"steps": unroutable, "knownCapabilities": known_capabilities},
        )


class PlanDepthError(PlanError):
    code = "plan_too_deep"

    def __init__(self, step_id: str, depth: int, limit: int) -> None:
        super().__init__(
            f"step {step_id!r} is nested {depth} levels deep in subtasks, over the limit of "
            f"{limit}. Flatten the plan, or raise MEOWSTIK_MAX_PLAN_DEPTH.",
            details={"stepId": step_id, "depth": depth, "limit": limit},
        )


class TemplateError(PlanError):
    code = "invalid_template"

    def __init__(
        self, template: str, message: str, *, code: str | None = None, **details: Any
    ) -> None:
        self.template = template
        if code:
            self.code = code
        super().__init__(
            message, details={"template": template, **details} if template else details
        )


class TemplateParameterError(PlanError):
    code = "template_parameter"

    def __init__(self, template: str, missing: list[str], wrong: dict[str, str]) -> None:
        parts = []
        if missing:
            parts.append(
                f"needs {', '.join(missing)}; pass "
                + " and ".join(f"initialContext.{name}" for name in missing)
            )
        if wrong:
            listed = "; ".join(f"initialContext.{name}: {why}" for name, why in wrong.items())
            parts.append(f"got values of the wrong type ({listed})")
        super().__init__(
            f"template {template!r} " + ", and ".join(parts) + ". GET "
            f"/api/orchestrator/templates/{template} lists its parameters.",
            details={"template": template, "missing": missing, "wrongType": wrong},
        )


class PlannerChoiceError(PlanError):
    code = "planner_choice"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, details=details)


class LimitExceededError(OrchestratorError):
    code = "limit_exceeded"
    http_status = 422

    def __init__(self, field: str, limit: int, actual: int, setting: str) -> None:
        self.field, self.limit, self.actual = field, limit, actual
        super().__init__(
            f"{field} is {actual}, over the limit of {limit}. Shorten it, or raise the limit with "
            f"the {setting} setting.",
            details={"field": field, "limit": limit, "actual": actual, "setting": setting},
        )


class ContextKeyError(OrchestratorError):
    code = "invalid_context_key"
    http_status = 422

    def __init__(self, keys: list[str]) -> None:
        super().__init__(
            f"context keys must be 1-128 characters of letters, digits, _ . : -; "
            f"these are not: {', '.join(repr(k) for k in keys)}",
            details={"keys": keys},
        )


class CursorError(OrchestratorError):
    code = "invalid_cursor"
    http_status = 422

    def __init__(self, cursor: str) -> None:
        super().__init__(
            f"cursor {cursor!r} is not one this API returned; pass the nextCursor of the "
            "previous page, or omit it for the first page",
            details={"cursor": cursor},
        )


class SessionNotFoundError(OrchestratorError):
    code = "session_not_found"
    http_status = 404

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(
            f"no session with id {session_id!r}; it may never have existed or has expired. "
            "POST /api/orchestrator/orchestrate returns the ids of new sessions.",
            details={"sessionId": session_id},
        )


class SessionFinishedError(OrchestratorError):
    code = "session_finished"
    http_status = 409

    def __init__(self, session_id: str, status: str) -> None:
        self.session_id = session_id
        self.status = status
        super().__init__(
            f"session {session_id!r} already {status}; only a running session can be changed. "
            "Submit a new session to run the goal again.",
            details={"sessionId": session_id, "status": status},
        )


class StepNotWaitingError(OrchestratorError):
    code = "step_not_waiting"
    http_status = 409

    def __init__(self, session_id: str, step_id: str, status: str) -> None:
        super().__init__(
            f"step {step_id!r} of session {session_id!r} is {status}, not waiting for input; "
            "GET the session to see which steps wait (status waiting_for_input)",
            details={"sessionId": session_id, "stepId": step_id, "status": status},
        )


class StepFinishedError(OrchestratorError):
    code = "step_finished"
    http_status = 409

    def __init__(self, session_id: str, step_id: str, status: str) -> None:
        super().__init__(
            f"step {step_id!r} of session {session_id!r} already ended ({status}); there is "
            "nothing left to revoke",
            details={"sessionId": session_id, "stepId": step_id, "status": status},
        )


class TaskNotFoundError(OrchestratorError):
    code = "task_not_found"
    http_status = 404

    def __init__(self, task_id: str) -> None:
        super().__init__(
            f"no task with id {task_id!r}; task ids are job ids, '<session id>.<step id>' "
            "(GET /api/tasks lists them)",
            details={"taskId": task_id},
        )


class InputValidationError(OrchestratorError):
    code = "invalid_input"
    http_status = 422

    def __init__(self, step_id: str, errors: list[dict[str, str]]) -> None:
        first = errors[0]
        super().__init__(
            f"the answer for step {step_id!r} does not match the schema it asked for: "
            f"{first['message']} (at {first['location']}); send a value that does",
            details={"stepId": step_id, "errors": errors},
        )


class AgentNotFoundError(OrchestratorError):
    code = "agent_not_found"
    http_status = 404

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        super().__init__(
            f"no agent with id {agent_id!r}; GET /api/orchestrator/agents lists registered agents.",
            details={"agentId": agent_id},
        )


class StoreUnavailableError(OrchestratorError):
    code = "store_unavailable"
    http_status = 503


class DispatchError(OrchestratorError):
    code = "broker_unavailable"
    http_status = 503


class StepError(OrchestratorError):
    """Raised by agent code. Not retryable unless it is a RetryableStepError."""

    code = "step_error"


class RetryableStepError(StepError):
    code = "step_retryable_error"


class PermanentStepError(StepError):
    code = "step_permanent_error"


class SubPlanError(PermanentStepError):
    """A sub-plan returned by a running step cannot be scheduled; the step fails with this."""

    code = "invalid_subplan"


class ReplanLoopError(SubPlanError):
    """A step keeps re-planning: the same sub-plan again, or too many sub-plans."""

    code = "replan_loop"
