"""Errors of plans and requests: an invalid plan, a limit, a bad key or cursor (422)."""

from __future__ import annotations

from typing import Any

from orchestrator.core.errors.base import OrchestratorError


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


class UnknownPolicyError(OrchestratorError):
    code = "unknown_policy"
    http_status = 422

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"no selection policy named {name!r}; known: {', '.join(known)}. Name one of them, "
            "or load the module defining it with MEOWSTIK_POLICY_MODULES on the API and workers",
            details={
                "errors": [{"location": "body.policy", "message": f"unknown policy {name!r}"}],
                "known": known,
            },
        )


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
