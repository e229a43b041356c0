"""Errors about sessions, steps and agents that do not exist, have ended, or refuse."""

from __future__ import annotations

from typing import Any

from orchestrator.core.errors.base import OrchestratorError


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


class IdempotencyKeyReusedError(OrchestratorError):
    code = "idempotency_key_reused"
    http_status = 422

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"this Idempotency-Key already made session {session_id!r} from a different body; "
            "send the same body to get that session again, or a new key for a new session",
            details={
                "sessionId": session_id,
                "errors": [
                    {
                        "location": "header.Idempotency-Key",
                        "message": "used before with a different body",
                        "type": "value_error",
                    }
                ],
            },
        )


class CallbackNotAllowedError(OrchestratorError):
    """A callbackUrl the HTTP agents' endpoint rules refuse (scheme, host, blocked address)."""

    code = "callback_not_allowed"
    http_status = 422

    def __init__(
        self, refused: EndpointNotAllowedError, location: str = "body.callbackUrl"
    ) -> None:
        what = "callbackUrl" if location.startswith("body.") else f"{location[9:]}'s webhook"
        super().__init__(
            f"{what} {refused.endpoint!r} is not allowed: {refused.reason}. Webhooks go "
            "where HTTP agents may: allowed schemes "
            f"{', '.join(refused.allowed_schemes)}, hosts in MEOWSTIK_HTTP_AGENT_ALLOWED_HOSTS "
            f"({', '.join(refused.allowed_hosts) or 'none'}).",
            details={
                "errors": [
                    {
                        "location": location,
                        "message": refused.reason,
                        "type": "value_error",
                    }
                ],
                **{k: v for k, v in refused.details.items() if k != "endpoint"},
            },
        )


class IdempotencyInProgressError(OrchestratorError):
    code = "idempotency_in_progress"
    http_status = 409

    def __init__(self, session_id: str, waited_s: float) -> None:
        super().__init__(
            f"another request with this Idempotency-Key is still creating session "
            f"{session_id!r} ({waited_s:g} s waited); retry the same request shortly",
            details={"sessionId": session_id, "retryable": True},
        )


class SessionNotRetryableError(OrchestratorError):
    code = "session_not_retryable"
    http_status = 409

    def __init__(self, session_id: str, status: str) -> None:
        super().__init__(
            f"session {session_id!r} is {status}; only a failed or cancelled session with a "
            "failed, skipped or cancelled step can be retried",
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


class StepNotFoundError(OrchestratorError):
    code = "step_not_found"
    http_status = 404

    def __init__(self, session_id: str, step_id: str, known: list[str]) -> None:
        shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
        super().__init__(
            f"session {session_id!r} has no step {step_id!r}; its steps: {shown or 'none'} "
            "(GET /api/orchestrator/sessions/<id> lists them under steps)",
            details={"sessionId": session_id, "stepId": step_id},
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


class ExperimentNotFoundError(OrchestratorError):
    code = "experiment_not_found"
    http_status = 404

    def __init__(self, name: str) -> None:
        super().__init__(
            f"no experiment named {name!r} (GET /api/orchestrator/experiments lists them)",
            details={"experiment": name},
        )


class ExperimentChoiceError(OrchestratorError):
    """A session names an experiment it cannot join: unknown, or stopped (a body error)."""

    code = "invalid_experiment"
    http_status = 422

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(
            f"experiment {name!r} {reason}; name a running one (GET "
            "/api/orchestrator/experiments lists them) or none",
            details={"errors": [{"location": "body.experiment", "message": reason}]},
        )


class ExperimentConflictError(OrchestratorError):
    code = "experiment_conflict"
    http_status = 409

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, details=details)


class BudgetValueError(OrchestratorError):
    """A budget change that cannot apply (e.g. a raise to less than already spent)."""

    code = "invalid_budget"
    http_status = 422

    def __init__(self, location: str, message: str) -> None:
        super().__init__(
            f"{location}: {message}",
            details={"errors": [{"location": location, "message": message}]},
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


class RegistrationError(OrchestratorError):
    code = "agent_not_executable"
    http_status = 422


class AgentExistsError(OrchestratorError):
    code = "agent_exists"
    http_status = 409

    def __init__(self, agent_id: str) -> None:
        super().__init__(
            f"an agent with id {agent_id!r} is already registered; change it with "
            f"PATCH /api/orchestrator/agents/{agent_id}, or DELETE it first",
            details={"agentId": agent_id},
        )


class EndpointNotAllowedError(OrchestratorError):
    """An HTTP agent endpoint that is malformed or outside the configured allowlist."""

    code = "endpoint_not_allowed"
    http_status = 422

    def __init__(
        self,
        endpoint: str,
        reason: str,
        fix: str,
        *,
        allowed_schemes: list[str],
        allowed_hosts: list[str],
    ) -> None:
        self.endpoint = endpoint
        self.reason = reason
        self.allowed_schemes = allowed_schemes
        self.allowed_hosts = allowed_hosts
        super().__init__(
            f"HTTP agent endpoint {endpoint!r} is not allowed: {reason}. {fix}",
            details={
                "endpoint": endpoint,
                "reason": reason,
                "allowedSchemes": allowed_schemes,
                "allowedHosts": allowed_hosts,
            },
        )
