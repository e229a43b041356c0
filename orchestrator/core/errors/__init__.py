"""The one exception tree of the product. Every error carries its data as attributes, a stable
``code``, the HTTP status the API answers with, and a message that says what failed, the bad
value, and how to fix it. The API renders any of them as ``{"error": {code, message, details}}``.

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
    ├── ContextKeyError            a context key that is not a valid state key (422)
    ├── CursorError                a listing cursor that is malformed (422)
    ├── SessionNotFoundError       (404)
    ├── SessionFinishedError       the session already ended (409)
    ├── SessionNotRetryableError   retrying a session that has not failed or been cancelled (409)
    ├── IdempotencyKeyReusedError  an Idempotency-Key sent again with another body (422)
    ├── CallbackNotAllowedError    a callbackUrl outside the HTTP agents' endpoint rules (422)
    ├── IdempotencyInProgressError the first request with the key has not finished (409)
    ├── StepNotWaitingError        an answer for a step that asked nothing (409)
    ├── StepFinishedError          revoking a step that already ended (409)
    ├── TaskNotFoundError          a Flower-style task id that names no step (404)
    ├── StepNotFoundError          a step id the session does not have (404)
    ├── InputValidationError       an answer that breaks the step's JSON schema (422)
    ├── AgentNotFoundError         (404)
    ├── RegistrationError          an agent nothing here can run, or a bad field (422)
    │   └── UnknownToolError       a capability naming a tool that is not registered
    ├── AgentExistsError           registering an id that is taken (409)
    ├── EndpointNotAllowedError    an HTTP agent endpoint outside the allowlist (422)
    ├── StateValidationError       a state value or key that cannot be stored (422)
    │   └── StateKeyError
    ├── StateConflictError         a transaction whose keys changed meanwhile (409)
    ├── TransactionClosedError     a committed or discarded transaction used again (409)
    ├── LockTimeoutError           a state lock held by another owner past the wait (409)
    ├── LockLostError              a state lock that expired before its release (409)
    ├── StateNotFoundError         a state entry that is absent or expired (404)
    ├── StoreUnavailableError      Redis unreachable or refusing (503); the store raises it
    │   ├── StoreOutOfMemoryError  Redis at maxmemory (noeviction) refuses writes (OOM)
    │   ├── StoreNotWritableError  Redis cannot persist and refuses writes (MISCONF)
    │   └── ReplicaAckTimeoutError a write too few replicas confirmed in time (WAIT)
    ├── DispatchError              broker refused or timed out a publish (503)
    ├── ToolError                  a tool's answer to the model that it failed: a result,
    │   │                          not a step failure (tools/invoke)
    │   └── WorkspaceError         a workspace path or file the rules refuse
    ├── ApiError                   a request refused at the API's edge: auth, rate limit,
    │                              body shape (its status and code are per instance)
    ├── ConfigurationError         settings that cannot be used (also a ValueError)
    │   ├── TokenConfigError       MEOWSTIK_API_TOKENS or its file
    │   ├── RedisUrlError          a Redis URL this product cannot use
    │   ├── EvictionPolicyError    a Redis whose maxmemory-policy may evict keys
    │   ├── AgentCatalogError      an agent module that fails to load, or a duplicate id
    │   └── ToolCatalogError       a tool module that fails to load, or a duplicate name
    └── StepError                  raised by an agent's work
        ├── RetryableStepError     retried with backoff, then the step fails
        │   ├── ModelUnavailableError  a model API unreachable, overloaded or rate limiting
        │   └── StepTimeoutError   a run past its step timeout (timeoutS), stopped
        └── PermanentStepError     the step fails at once
            ├── ContextLengthError     a prompt longer than the model's context window
            ├── ReplyTruncatedError    a model reply cut at max_tokens
            └── SubPlanError       a sub-plan a step returned is invalid or too big or deep
                └── ReplanLoopError  ... or repeats one it or an ancestor returned before

Not part of it: ``steps.InputRequired`` (an agent's signal, not an error) and the CLI's own
errors about local processes (``cli/supervisor_errors.py``, ``cli/api_errors.py``).
"""

from orchestrator.core.errors.base import (
    AgentCatalogError,
    ApiError,
    ConfigurationError,
    DispatchError,
    EvictionPolicyError,
    OrchestratorError,
    PermanentStepError,
    RedisUrlError,
    ReplanLoopError,
    ReplicaAckTimeoutError,
    RetryableStepError,
    StepError,
    StepTimeoutError,
    StoreNotWritableError,
    StoreOutOfMemoryError,
    StoreUnavailableError,
    SubPlanError,
    TokenConfigError,
)
from orchestrator.core.errors.llm import (
    ContextLengthError,
    ModelUnavailableError,
    ReplyTruncatedError,
)
from orchestrator.core.errors.plans import (
    ContextKeyError,
    CursorError,
    CycleError,
    DuplicateStepError,
    LimitExceededError,
    PlanDepthError,
    PlanError,
    PlannerChoiceError,
    TemplateError,
    TemplateParameterError,
    UnknownDependencyError,
    UnknownPolicyError,
    UnroutableStepError,
)
from orchestrator.core.errors.sessions import (
    AgentExistsError,
    AgentNotFoundError,
    BudgetValueError,
    CallbackNotAllowedError,
    EndpointNotAllowedError,
    ExperimentChoiceError,
    ExperimentConflictError,
    ExperimentNotFoundError,
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    InputValidationError,
    RegistrationError,
    SessionFinishedError,
    SessionNotFoundError,
    SessionNotRetryableError,
    StepFinishedError,
    StepNotFoundError,
    StepNotWaitingError,
    TaskNotFoundError,
)
from orchestrator.core.errors.state import (
    LockLostError,
    LockTimeoutError,
    StateConflictError,
    StateKeyError,
    StateNotFoundError,
    StateValidationError,
    TransactionClosedError,
)
from orchestrator.core.errors.tools import (
    ToolCatalogError,
    ToolError,
    UnknownToolError,
    WorkspaceError,
)

__all__ = [
    "ContextLengthError",
    "ModelUnavailableError",
    "ReplyTruncatedError",
    "OrchestratorError",
    "StoreUnavailableError",
    "StoreOutOfMemoryError",
    "StoreNotWritableError",
    "ReplicaAckTimeoutError",
    "DispatchError",
    "ApiError",
    "ConfigurationError",
    "TokenConfigError",
    "RedisUrlError",
    "EvictionPolicyError",
    "AgentCatalogError",
    "StepError",
    "RetryableStepError",
    "StepTimeoutError",
    "PermanentStepError",
    "SubPlanError",
    "ReplanLoopError",
    "PlanError",
    "DuplicateStepError",
    "UnknownDependencyError",
    "CycleError",
    "UnroutableStepError",
    "PlanDepthError",
    "TemplateError",
    "TemplateParameterError",
    "PlannerChoiceError",
    "LimitExceededError",
    "UnknownPolicyError",
    "ContextKeyError",
    "CursorError",
    "SessionNotFoundError",
    "SessionFinishedError",
    "SessionNotRetryableError",
    "IdempotencyKeyReusedError",
    "CallbackNotAllowedError",
    "IdempotencyInProgressError",
    "StepNotWaitingError",
    "StepFinishedError",
    "StepNotFoundError",
    "TaskNotFoundError",
    "InputValidationError",
    "BudgetValueError",
    "ExperimentChoiceError",
    "ExperimentConflictError",
    "ExperimentNotFoundError",
    "AgentNotFoundError",
    "RegistrationError",
    "AgentExistsError",
    "EndpointNotAllowedError",
    "StateValidationError",
    "StateKeyError",
    "StateNotFoundError",
    "StateConflictError",
    "TransactionClosedError",
    "LockTimeoutError",
    "LockLostError",
    "ToolCatalogError",
    "ToolError",
    "WorkspaceError",
    "UnknownToolError",
]
