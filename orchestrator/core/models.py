"""Pydantic models of the REST contract, in the spec's camelCase JSON.

Pure: no I/O. Requests forbid unknown fields so that a typo gets a 422 naming it instead of
being silently ignored.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from orchestrator.core.budgets import SessionBudget
from orchestrator.core.camel import CamelModel as CamelModel  # re-exported: the API models
from orchestrator.core.costs import CostFigures, SessionCostSummary
from orchestrator.core.llm_endpoints import ENDPOINT_NAME_PATTERN
from orchestrator.core.statuses import AgentStatus, SessionStatus, StepStatus

STEP_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
AGENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
CAPABILITY_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"

_CAPABILITY_NAME = re.compile(CAPABILITY_NAME_PATTERN)
_SHOWN_NAME_CHARS = 80


def check_capability_name(name: str) -> str:
    """``name`` if it is a capability name; otherwise a ValueError that quotes it (shortened)
    and says what a name may contain. Capability names become queue and Redis key names
    (``cap.<name>``, ``waiting:<name>``), so nothing else is accepted."""
    if _CAPABILITY_NAME.fullmatch(name):
        return name
    shown = name if len(name) <= _SHOWN_NAME_CHARS else f"{name[:_SHOWN_NAME_CHARS]}..."
    raise ValueError(
        f"capability name {shown!r} ({len(name)} characters) is malformed: use 1-64 lowercase "
        "ASCII letters, digits and '_', starting with a letter"
    )


StepId = Annotated[str, StringConstraints(pattern=STEP_ID_PATTERN)]
AgentId = Annotated[str, StringConstraints(pattern=AGENT_ID_PATTERN)]
CapabilityName = Annotated[
    str,
    AfterValidator(check_capability_name),
    WithJsonSchema({"type": "string", "pattern": CAPABILITY_NAME_PATTERN}),
]
ShortText = Annotated[str, StringConstraints(max_length=200)]
# capability -> the agent that runs every step needing it (while that agent is eligible)
AgentOverrides = Annotated[dict[CapabilityName, AgentId], Field(max_length=32)]
LongText = Annotated[str, StringConstraints(max_length=4000)]


TemplateName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
ModelName = Annotated[str, StringConstraints(pattern=r"^\S{1,200}$")]
MAX_REPLY_TOKENS = 1_000_000  # an agent's maxTokens: a bound on the model's reply
MAX_STEP_TIMEOUT_S = 24 * 3600.0  # a step's or agent's timeoutS: a day at most (unset: no limit)
# a run's time limit (s): the step's timeoutS, else its agent's, else MEOWSTIK_STEP_TIMEOUT_S;
# strict: a number, never "5" or true
TimeoutSeconds = Annotated[float, Field(gt=0, le=MAX_STEP_TIMEOUT_S, strict=True)]


class PlannerName(StrEnum):
    """Who turns a goal into a plan (request field ``planner``, setting MEOWSTIK_PLANNER)."""

    AUTO = "auto"  # a template whose pattern matches the goal, else the LLM if set, else rules
    RULE = "rule"  # the offline rule-based planner
    TEMPLATE = "template"  # a workflow template: the one named by ``template``, else a match
    LLM = "llm"  # the OpenAI-compatible chat model, validated and repaired, rules as fallback
    EXPLICIT = "explicit"  # the request's own ``plan``


class RequestModel(CamelModel):
    model_config = ConfigDict(extra="forbid")


class FailurePolicy(StrEnum):
    FAIL_FAST = "fail_fast"  # the first failed step fails the session; nothing new starts
    CONTINUE = "continue"  # independent branches finish; dependents of a failure are skipped


class Capability(RequestModel):
    name: CapabilityName
    description: LongText = ""
    domains: list[ShortText] = Field(default_factory=list, max_length=50)
    tools: list[ShortText] = Field(default_factory=list, max_length=50)


class AgentExecutor(StrEnum):
    """What runs an agent's steps."""

    PYTHON = "python"  # code hosted by `meowstik worker` processes
    HTTP = "http"  # a remote endpoint the remote executor POSTs each step to
    LLM = "llm"  # an OpenAI-compatible chat model the remote executor asks


class AgentDefinition(RequestModel):
    """An agent as the registry stores and lists it (spec: AgentDefinition)."""

    id: AgentId
    name: ShortText
    type: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
    description: LongText = ""
    capabilities: list[Capability] = Field(min_length=1, max_length=100)
    priority: int = Field(default=0, ge=-1000, le=1000)
    status: AgentStatus = AgentStatus.ACTIVE
    current_load: int = Field(default=0, ge=0)
    max_load: int = Field(default=1, ge=1, le=10_000)
    metadata: dict[str, Any] = Field(default_factory=dict)
    executor: AgentExecutor = AgentExecutor.PYTHON
    endpoint: Annotated[str, StringConstraints(max_length=2048)] | None = None
    system_prompt: LongText | None = None
    # the time limit of this agent's runs unless a step sets its own (core/timeouts.py); an
    # HTTP agent's request timeout too (30 s when no limit applies)
    timeout_s: TimeoutSeconds | None = None
    # LLM agents only: the model, the configured endpoint by name (not a URL), sampling and length
    model: ModelName | None = None
    base_url: Annotated[str, StringConstraints(pattern=ENDPOINT_NAME_PATTERN)] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_REPLY_TOKENS)
    # stream the model's text to the session's events (step.delta); None: MEOWSTIK_LLM_STREAM
    stream: bool | None = None

    @property
    def capability_names(self) -> frozenset[str]:
        return frozenset(capability.name for capability in self.capabilities)


class CircuitState(CamelModel):
    state: str  # closed | open
    open_until: str | None = None


class RegisteredAgent(AgentDefinition):
    """An agent as GET /api/orchestrator/agents shows it: the definition with its live status
    (offline when its worker stopped heartbeating, unhosted when nothing has run it or nothing
    alive can, with ``waitingFor`` saying what would), live load, worker and circuit breaker."""

    model_config = ConfigDict(extra="ignore")

    worker: str | None = None
    queue: str | None = None
    last_heartbeat: str | None = None
    circuit: CircuitState = Field(default_factory=lambda: CircuitState(state="closed"))
    waiting_for: str | None = None  # unhosted: what would make it selectable
    missing_tools: list[str] = Field(default_factory=list)  # named by capabilities, unregistered


class AgentUpdate(RequestModel):
    """Body of PATCH /api/orchestrator/agents/<id>: only these fields may change."""

    status: AgentStatus | None = None
    priority: int | None = Field(default=None, ge=-1000, le=1000)
    max_load: int | None = Field(default=None, ge=1, le=10_000)
    name: ShortText | None = None
    description: LongText | None = None
    metadata: dict[str, Any] | None = None
    timeout_s: TimeoutSeconds | None = None  # an explicit null removes the agent's own limit


class PlanStep(RequestModel):
    """One step of a plan. ``subtasks`` run before their parent, which receives their outputs."""

    id: StepId
    title: ShortText
    description: LongText = ""
    agent_type: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")] | None = None
    required_capabilities: list[CapabilityName] = Field(min_length=1, max_length=20)
    depends_on: list[StepId] = Field(default_factory=list, max_length=1000)
    # how many: MEOWSTIK_MAX_SUBTASKS_PER_STEP, checked against the settings (graph.py)
    subtasks: list[PlanStep] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    estimated_duration_s: float | None = Field(default=None, ge=0)
    # this step's time limit per run, over its agent's timeoutS (core/timeouts.py)
    timeout_s: TimeoutSeconds | None = None


class TaskPlan(RequestModel):
    """A checked plan, as plan previews and session snapshots show it. It is accepted back
    unchanged as a request's ``plan`` (see ExplicitPlan for what is ignored then)."""

    goal: LongText
    steps: list[PlanStep] = Field(min_length=1)
    parallelizable: bool = False
    planner: PlannerName | None = None  # who made it (after any fallback)
    template: TemplateName | None = None


class ExplicitPlan(RequestModel):
    """A plan given by the client (request field ``plan``): its steps run as given.

    The ``plan`` a plan preview (POST /api/orchestrator/plans) or a session snapshot returns is
    accepted unchanged, sub-plans grafted under its steps included, so a plan can be previewed,
    edited and submitted, or a session's plan run again. Its other fields describe the plan it
    was and are ignored: the session's goal is the request's ``goal``, ``parallelizable`` is
    computed from the steps, and the plan is recorded as made by planner ``explicit`` (the
    session's log quotes the ``planner`` and ``template`` it said). Any other field is a 422.
    """

    steps: list[PlanStep] = Field(
        min_length=1,
        description="The steps to run, as given. A step's subtasks, its own or a sub-plan "
        "grafted under it in a snapshot, run before it; it runs once, with their outputs.",
    )
    goal: LongText | None = Field(
        default=None,
        description="Ignored: the session's goal is the request's goal. Accepted so that the "
        "plan of a preview or a snapshot can be sent back unchanged.",
    )
    parallelizable: bool | None = Field(
        default=None,
        description="Ignored: computed from the steps' dependencies (true when two steps can "
        "run at the same time).",
    )
    planner: PlannerName | None = Field(
        default=None,
        description='Ignored: a client\'s plan is recorded as made by planner "explicit"; the '
        "value sent is quoted in the session's log.",
    )
    template: TemplateName | None = Field(
        default=None,
        description="Ignored, like planner: quoted in the session's log, not recorded as the "
        "plan's template.",
    )


class BudgetRequest(RequestModel):
    """``budget`` on POST /orchestrate and the body of PATCH .../budget: at least one limit."""

    max_cost_usd: float | None = Field(default=None, gt=0, le=1_000_000)
    max_tokens: int | None = Field(default=None, ge=1, le=10**12)

    @model_validator(mode="after")
    def _one_limit(self) -> BudgetRequest:
        if self.max_cost_usd is None and self.max_tokens is None:
            raise ValueError("give maxCostUsd (dollars), maxTokens, or both")
        return self


class OrchestrateRequest(RequestModel):
    """Body of POST /api/orchestrator/orchestrate."""

    goal: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    user_id: ShortText | None = None
    chat_id: ShortText | None = None
    initial_context: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    plan: ExplicitPlan | None = None
    planner: PlannerName | None = None
    template: TemplateName | None = None
    failure_policy: FailurePolicy = FailurePolicy.FAIL_FAST
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    budget: BudgetRequest | None = None  # none: the user's default (MEOWSTIK_BUDGET_*)
    policy: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")] | None = None
    # pin capabilities to agents: a step needing one goes to that agent while it is eligible
    # (alive, not drained, circuit not open, has every capability the step needs, not failed
    # on it before), waiting for its capacity; otherwise the policy ranks as usual
    agent_overrides: AgentOverrides | None = None
    # POSTed the session's final summary when it ends, signed (MEOWSTIK_SIGNING_SECRETS), retried
    # for MEOWSTIK_WEBHOOK_RETRY_S; the HTTP agents' endpoint rules apply (allowed hosts, no
    # always-blocked address)
    callback_url: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = None
    # an A/B experiment to join (its variant may set policy, planner, template, agentOverrides)
    experiment: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] | None
    ) = None


class InputAnswer(RequestModel):
    """Body of POST /api/orchestrator/sessions/<id>/input."""

    step_id: StepId
    value: Any


class SessionQuery(RequestModel):
    """Query string of GET /api/orchestrator/sessions."""

    user_id: ShortText | None = None
    status: SessionStatus | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: Annotated[str, StringConstraints(max_length=200)] | None = None


class SessionSummary(CamelModel):
    """One row of GET /api/orchestrator/sessions."""

    session_id: str
    status: SessionStatus
    goal: str
    user_id: str | None = None
    chat_id: str | None = None
    completed_tasks: int
    failed_tasks: int
    total_tasks: int
    start_time: str
    end_time: str | None = None


class StepErrorRecord(CamelModel):
    """One failure of a step as the snapshot's ``errors`` lists it (not an exception: agents
    raise ``errors.StepError``)."""

    step_id: str
    job_id: str
    agent_id: str | None = None
    error_type: str
    message: str
    attempt: int
    timestamp: str


class TokenCounts(CamelModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class StepUsage(TokenCounts):
    """The tokens of the model calls a step's completing run used (through ``step_input.llm``
    or as an LLM agent): replayed calls count once, as they were paid once; calls whose server
    counted no tokens are ``uncountedCalls``."""

    model_calls: int = 0
    replayed_calls: int = 0
    uncounted_calls: int = 0
    cost_usd: str | None = None  # exact decimal; None when no call had a price
    uncosted_calls: int = 0
    by_model: dict[str, TokenCounts] = Field(default_factory=dict)


class StepState(CamelModel):
    """Runtime record of one step, as the session snapshot shows it."""

    step_id: str
    job_id: str
    title: str
    status: StepStatus
    queue: str
    depends_on: list[str] = Field(default_factory=list)
    parent_id: str | None = None
    subtask_ids: list[str] = Field(default_factory=list)
    decompositions: int = 0  # sub-plans this step returned while running
    agent_id: str | None = None
    attempts: int = 0
    queued_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    # "capacity": every eligible agent is full; "agent": no eligible agent is alive, and the step
    # fails at its schedule deadline (ISO time) unless one appears (core/availability.py)
    waiting_for: str | None = None
    schedule_deadline: str | None = None
    input_request: dict[str, Any] | None = None  # question, schema, deadline, onTimeout
    failed_agents: list[str] = Field(default_factory=list)
    usage: StepUsage | None = None  # the completing run's model calls
    cost: CostFigures | None = None  # every run's, each call counted once (None: nothing spent)
    # why routing chose its agent, when the policy explains (policy, scores, notes, at)
    routing: dict[str, Any] | None = None
    round: int | None = None  # the retry round that reset it (None: it ran in the first)


class SessionSnapshot(CamelModel):
    """What GET /api/orchestrator/sessions/<id> returns (spec shape plus per-step states)."""

    session_id: str
    status: SessionStatus
    goal: str
    user_id: str | None = None
    chat_id: str | None = None
    plan: TaskPlan
    job_ids: list[str]
    completed_tasks: int
    failed_tasks: int
    total_tasks: int
    results: dict[str, Any]
    errors: list[StepErrorRecord]
    start_time: str
    end_time: str | None = None
    failure_policy: FailurePolicy
    metadata: dict[str, Any] = Field(default_factory=dict)
    steps: dict[str, StepState]
    cost: SessionCostSummary | None = None  # what its steps spent (None: nothing yet)
    budget: SessionBudget | None = None  # its limits and what counts against them (None: none)
    policy: str | None = None  # the selection policy it named (None: MEOWSTIK_SELECTION_POLICY)
    experiment: dict[str, str] | None = None  # {"name", "variant"} when it joined one
    agent_overrides: dict[str, str] | None = None  # capability -> pinned agent, when set
    round: int | None = None  # the retry round it is in (None: never retried)
    callback_url: str | None = None  # its webhook, when it has one


class StepPreview(CamelModel):
    """One step of a plan preview, with its estimate and its place in time."""

    title: str
    depends_on: list[str]
    parent_id: str | None = None
    required_capabilities: list[str]
    estimate_s: float | None = None
    estimate_source: str  # plan | measured | unknown
    earliest_start_s: float
    earliest_finish_s: float
    slack_s: float


class PlanPreview(CamelModel):
    """What POST /api/orchestrator/plans returns: the checked plan, nothing run."""

    plan: TaskPlan
    total_steps: int
    critical_path: list[str]
    estimated_duration_s: float
    steps_without_estimate: list[str]
    steps: dict[str, StepPreview]
    notes: list[dict[str, Any]] = Field(default_factory=list)
