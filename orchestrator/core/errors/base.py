"""The root of the tree and the errors of the process's edges: store, broker, API, settings, and
the errors agents raise. See the package docstring for the whole tree."""

from __future__ import annotations

from typing import Any


class OrchestratorError(Exception):
    code = "orchestrator_error"
    http_status = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class StoreUnavailableError(OrchestratorError):
    """Redis did not answer, or refused the credentials. ``retryable`` says whether waiting
    helps (a wrong password does not)."""

    code = "store_unavailable"
    http_status = 503

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        self.retryable = retryable
        super().__init__(message, details={"retryable": retryable})

    @classmethod
    def refused_credentials(cls) -> StoreUnavailableError:
        return cls(
            "Redis refused the API's credentials (MEOWSTIK_REDIS_URL: wrong user or "
            "password, a disabled user, or missing ACL permissions); an operator must fix "
            "the URL",
            retryable=False,
        )

    @classmethod
    def no_answer(cls, what: str) -> StoreUnavailableError:
        return cls(f"Redis did not answer ({what}); retry shortly", retryable=True)


class DispatchError(OrchestratorError):
    code = "broker_unavailable"
    http_status = 503


class ApiError(OrchestratorError):
    """A request refused at the API's edge (authentication, rate limit, body shape), with its
    HTTP status, code and response headers given per instance."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.http_status = status
        self.code = code
        self.headers = dict(headers or {})
        if status == 401:
            self.headers.setdefault("WWW-Authenticate", 'Bearer realm="meowstik"')

    @property
    def status(self) -> int:
        return self.http_status


class ConfigurationError(OrchestratorError, ValueError):
    """Settings that cannot be used; the message says which entry and why."""

    code = "configuration_error"


class TokenConfigError(ConfigurationError):
    """MEOWSTIK_API_TOKENS or its file cannot be used; the message says which entry and why."""


class RedisUrlError(ConfigurationError):
    """A Redis URL this product cannot use; the message says what to write instead."""


class AgentCatalogError(ConfigurationError):
    """An agent module could not be loaded or defines a duplicate agent id."""


class StepError(OrchestratorError):
    """Raised by agent code. Not retryable unless it is a RetryableStepError."""

    code = "step_error"


class RetryableStepError(StepError):
    code = "step_retryable_error"


class StepTimeoutError(RetryableStepError):
    """A run went past its step timeout (the step's ``timeoutS``, else its agent's, else
    MEOWSTIK_STEP_TIMEOUT_S) and was stopped: retried like any retryable failure."""

    code = "step_timeout"

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        super().__init__(
            f"step timed out after {timeout_s:g} s; if it needs longer, raise timeoutS on the "
            "step or its agent (or MEOWSTIK_STEP_TIMEOUT_S)",
            details={"timeoutS": timeout_s},
        )


class PermanentStepError(StepError):
    code = "step_permanent_error"


class SubPlanError(PermanentStepError):
    """A sub-plan returned by a running step cannot be scheduled; the step fails with this."""

    code = "invalid_subplan"


class ReplanLoopError(SubPlanError):
    """A step keeps re-planning: the same sub-plan again, or too many sub-plans."""

    code = "replan_loop"
