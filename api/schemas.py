"""Response models of the routes that answer dicts built by hand, for the OpenAPI document.

The routes do not use these models; they describe exactly what each route returns today (read
from the route and the functions it calls), so that /openapi.json can state every response and
schemathesis can hold the API to it. Models whose objects the API may extend (worker records,
statistics keyed by names) allow extra keys; the others forbid them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.core.agent_metrics import AgentMetrics
from orchestrator.core.experiments import Experiment
from orchestrator.core.models import CamelModel, RegisteredAgent, SessionSummary


class Closed(BaseModel):
    """A fixed JSON shape: no keys beyond the declared ones."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ClosedCamel(CamelModel):
    model_config = ConfigDict(extra="forbid")


# --- errors ---------------------------------------------------------------------------------


class ErrorBody(Closed):
    code: str = Field(description="stable machine-readable code, e.g. validation_error")
    message: str = Field(description="what was wrong and how to fix it")
    details: dict[str, Any] = Field(description="structured data about the error; may be {}")


class Error(Closed):
    """Every error the API answers (api/errors.py)."""

    error: ErrorBody


# --- health ---------------------------------------------------------------------------------


class HealthNote(Closed):
    code: str = Field(description="e.g. redis_eviction_policy, store_out_of_memory")
    message: str = Field(description="what is wrong and how to fix it")


class Health(Closed):
    """GET /healthz: ``ok``/``ok`` (200, with ``warnings`` when a risk is allowed by settings),
    or ``unavailable`` and the Redis error or a summary of ``problems`` (503)."""

    status: Literal["ok", "unavailable"]
    redis: str
    problems: list[HealthNote] | None = Field(
        None, description="why Redis, though it answers, cannot hold the records (503)"
    )
    warnings: list[HealthNote] | None = Field(None, description="risks settings allow (200)")


# --- sessions -------------------------------------------------------------------------------


class SessionList(ClosedCamel):
    """GET /api/orchestrator/sessions."""

    sessions: list[SessionSummary]
    count: int
    next_cursor: str | None


class DeliveryAttempt(ClosedCamel):
    """One attempt to deliver a session's webhook."""

    delivery_id: str  # "<session id>.<end ms>": the same on every attempt of one ending
    attempt: int
    at: str
    url: str | None
    status: Literal["delivered", "failed", "abandoned"]
    http_status: int | None = None
    error: str | None = None
    duration_ms: int | None = None
    next_attempt_at: str | None = None


class PendingDelivery(ClosedCamel):
    delivery_id: str
    next_attempt_at: str | None


class Deliveries(ClosedCamel):
    """GET /api/orchestrator/sessions/<id>/deliveries."""

    session_id: str
    callback_url: str | None
    deliveries: list[DeliveryAttempt]
    count: int
    pending: list[PendingDelivery]


class ContextUpdate(ClosedCamel):
    """PATCH /api/orchestrator/sessions/<id>/context: the whole shared context after the merge."""

    session_id: str
    shared_state: dict[str, Any]


# --- logs and statistics --------------------------------------------------------------------


class LogEntry(ClosedCamel):
    """One log entry (orchestrator/store/logbook.py ``to_json``)."""

    id: str
    timestamp: str | None
    level: str
    source: str
    message: str
    session_id: str | None = None
    agent_id: str | None = None
    task_id: str | None = None
    error: str | None = None
    data: Any = None


class SessionLogs(ClosedCamel):
    """GET /api/orchestrator/sessions/<id>/logs."""

    session_id: str
    logs: list[LogEntry]
    next_cursor: str | None


class RecentLogs(ClosedCamel):
    """GET /api/orchestrator/logs."""

    logs: list[LogEntry]
    next_cursor: str | None


class StepDurations(Closed):
    count: int
    p50: float | None
    p95: float | None
    max: float | None


class AgentLogCounts(ClosedCamel):
    steps: int
    completed: int
    failed: int
    log_entries: int


class SessionStats(ClosedCamel):
    """GET /api/orchestrator/sessions/<id>/stats (orchestrator/stats.py)."""

    session_id: str
    status: str
    total_entries: int
    by_level: dict[str, int]
    by_source: dict[str, int]
    error_rate: float
    step_durations: StepDurations
    agents: dict[str, AgentLogCounts]


# --- templates ------------------------------------------------------------------------------


class TemplateParameterSummary(Closed):
    description: str
    type: str | None
    required: bool
    default: Any = None


class TemplateSummary(Closed):
    """One workflow template (WorkflowTemplate.summary)."""

    name: str
    title: str
    description: str
    match: list[str]
    parameters: dict[str, TemplateParameterSummary]
    steps: list[dict[str, Any]]
    source: str


class TemplateProblem(Closed):
    """A template file that could not be loaded."""

    file: str
    message: str
    template: str | None = None


class TemplateList(Closed):
    """GET /api/orchestrator/templates."""

    templates: list[TemplateSummary]
    count: int
    problems: list[TemplateProblem]


# --- agents ---------------------------------------------------------------------------------


class ListedAgent(RegisteredAgent):
    """An agent of GET /api/orchestrator/agents; with ?metrics=<window>, how it did in that
    window (what GET .../agents/<id>/metrics?window=<window> answers)."""

    metrics: AgentMetrics | None = None


class ExperimentList(Closed):
    """GET /api/orchestrator/experiments."""

    experiments: list[Experiment]
    count: int


class AgentList(Closed):
    """GET /api/orchestrator/agents."""

    agents: list[ListedAgent]
    count: int


class AgentDeleted(Closed):
    """DELETE /api/orchestrator/agents/<id>: the record as it was."""

    deleted: Literal[True]
    agent: RegisteredAgent


class AgentStats(ClosedCamel):
    """GET /api/orchestrator/stats."""

    total_agents: int
    active_agents: int
    busy_agents: int
    total_capacity: int
    used_capacity: int
    agents_by_type: dict[str, int]


class AutoscaledAgent(ClosedCamel):
    agent_id: str
    workers: int
    min_workers: int
    max_workers: int
    replicas: list[str]
    draining: str | None
    backlog: int
    last_action: str | None
    last_action_at: str | None


class AutoscalerStatus(ClosedCamel):
    """GET /api/orchestrator/autoscaler: ``{"enabled": false, "agents": []}`` when no autoscaler
    looked recently, else its last record (cli/autoscale.py)."""

    enabled: bool
    agents: list[AutoscaledAgent]
    updated_at: str | None = None
    interval_s: float | None = None
    backlog_threshold: int | None = None


# --- Flower-compatible ----------------------------------------------------------------------


class QueueExchange(Closed):
    name: str
    type: str
    durable: bool


class WorkerQueue(Closed):
    name: str
    exchange: QueueExchange
    routing_key: str
    durable: bool
    exclusive: bool
    auto_delete: bool
    no_ack: bool


class WorkerPool(Closed):
    max_concurrency: int | None = Field(alias="max-concurrency")
    implementation: str | None


class WorkerStats(Closed):
    pid: int | None
    hostname: str
    pool: WorkerPool
    prefetch_count: int | None


class WorkerDocument(Closed):
    """One worker as Flower's GET /api/workers shows it, plus its agents and status."""

    active_queues: list[WorkerQueue]
    registered: list[str]
    stats: WorkerStats
    timestamp: float | None
    lastHeartbeat: str | None  # noqa: N815 - the wire name
    alive: bool
    status: Literal["online", "offline"]
    agents: list[str]
    remote: bool


class QueueLength(Closed):
    name: str
    messages: int


class QueueLengths(Closed):
    """GET /api/queues/length."""

    active_queues: list[QueueLength]


class TaskDocument(Closed):
    """One step as Flower's task dict (orchestrator/inspection.py ``task_document``)."""

    uuid: str
    name: str
    state: str
    received: float | None
    sent: float | None
    started: float | None
    succeeded: float | None
    failed: float | None
    revoked: float | None
    retried: float | None
    timestamp: float | None
    runtime: float | None
    args: str
    kwargs: str
    result: str | None
    exception: str | None
    traceback: str | None
    retries: int
    worker: str | None
    routing_key: str | None
    root_id: str
    parent_id: str | None
    eta: float | None
    expires: float | None
    sessionId: str  # noqa: N815 - the wire names
    stepId: str  # noqa: N815
    agentId: str | None  # noqa: N815
    status: str


class TaskTypes(Closed):
    """GET /api/task/types."""

    task_types: list[str] = Field(alias="task-types")


class RevokeResult(Closed):
    """POST /api/task/revoke/<id>."""

    message: str


__all__ = [
    "AgentDeleted",
    "AgentList",
    "AgentStats",
    "AutoscalerStatus",
    "ContextUpdate",
    "Error",
    "Health",
    "HealthNote",
    "QueueLengths",
    "RecentLogs",
    "RevokeResult",
    "SessionList",
    "SessionLogs",
    "SessionStats",
    "TaskDocument",
    "TaskTypes",
    "TemplateList",
    "TemplateSummary",
    "WorkerDocument",
]
