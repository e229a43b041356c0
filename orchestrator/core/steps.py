"""What an agent receives and returns for one step, and how its input is assembled.

Context propagation (DESIGN rule 4): a step's input holds the session's initial context, the shared
state, and the outputs of the steps it depends on, keyed by step id.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.core.chat import StepModel
from orchestrator.core.models import PlanStep


class StepLogger(Protocol):
    """The logger an agent gets (``step_input.logger``): entries go to the session's durable
    log with source "agent", bound to the session, the step and the agent."""

    def debug(self, message: str, **data: Any) -> None: ...
    def info(self, message: str, **data: Any) -> None: ...
    def warn(self, message: str, **data: Any) -> None: ...
    def error(self, message: str, **data: Any) -> None: ...


class PrivateStateView(Protocol):
    """``step_input.state.private``: the agent's own entries in the session."""

    def get(self, key: str, default: Any = None) -> Any: ...
    def set(self, key: str, value: Any) -> int: ...
    def delete(self, key: str) -> bool: ...
    def entries(self) -> dict[str, Any]: ...


class StateView(Protocol):
    """``step_input.state``: the session's State Manager bound to the step's agent
    (orchestrator/engine/agent_state.py). Writes take effect at once and are versioned."""

    @property
    def private(self) -> PrivateStateView: ...

    def get(self, key: str, default: Any = None) -> Any: ...
    def set(
        self, key: str, value: Any, type: str = "shared", ttl_s: float | None = None
    ) -> int: ...

    def delete(self, key: str, type: str = "shared") -> bool: ...
    def entries(self) -> dict[str, Any]: ...
    def lock(
        self, name: str, ttl_s: float = ..., wait_s: float = ...
    ) -> AbstractContextManager[None]: ...
    def transaction(self) -> AbstractContextManager[Any]: ...


class WorkspaceView(Protocol):
    """``step_input.workspace``: the session's file area (orchestrator/store/workspace.py),
    text files by relative path, bounded by MEOWSTIK_WORKSPACE_MAX_FILE_BYTES and
    MEOWSTIK_WORKSPACE_MAX_FILES. Bad paths and limits raise WorkspaceError."""

    def read(self, path: str) -> str | None: ...
    def write(self, path: str, content: str) -> int: ...
    def list(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class StepInput:
    session_id: str
    step_id: str
    job_id: str
    goal: str
    step: PlanStep
    agent_id: str
    attempt: int
    initial_context: dict[str, Any] = field(default_factory=dict)
    shared_state: dict[str, Any] = field(default_factory=dict)
    dependencies: dict[str, Any] = field(default_factory=dict)
    input_provided: bool = False
    operator_input: Any = None
    subtask_ids: tuple[str, ...] = ()
    decompositions: int = 0
    # this run's time limit in seconds (the step's timeoutS, else its agent's, else
    # MEOWSTIK_STEP_TIMEOUT_S), None: no limit; past it the run is stopped and retried
    timeout_s: float | None = None
    logger: StepLogger | None = field(default=None, compare=False, repr=False)
    state: StateView | None = field(default=None, compare=False, repr=False)
    workspace: WorkspaceView | None = field(default=None, compare=False, repr=False)
    llm: StepModel | None = field(default=None, compare=False, repr=False)
    # the capability names of the active agents, sorted (a planner decomposes over these)
    fleet_capabilities: Callable[[], list[str]] | None = field(
        default=None, compare=False, repr=False
    )

    @property
    def subtask_outputs(self) -> dict[str, Any]:
        """The outputs of this step's subtasks (from the plan, or from sub-plans it returned),
        by step id: a parent runs after its subtasks and builds on these."""
        return {sid: self.dependencies[sid] for sid in self.subtask_ids if sid in self.dependencies}

    def as_context(self, private_state: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON document an external agent (HTTP, LLM) is given; ``privateState`` is the
        agent's own entries when the caller read them (``state.private.entries()``)."""
        return {
            "sessionId": self.session_id,
            "stepId": self.step_id,
            "jobId": self.job_id,
            "goal": self.goal,
            "step": self.step.model_dump(mode="json", by_alias=True, exclude={"subtasks"}),
            "agentId": self.agent_id,
            "attempt": self.attempt,
            "initialContext": self.initial_context,
            "sharedState": self.shared_state,
            "privateState": private_state or {},
            "dependencies": self.dependencies,
            "operatorInput": self.operator_input if self.input_provided else None,
            "subtaskOutputs": self.subtask_outputs,
            "decompositions": self.decompositions,
            "timeoutS": self.timeout_s,
        }


@dataclass(frozen=True)
class StepResult:
    """An agent's answer: ``output`` is stored as the step's result (JSON-serialisable);
    ``state_updates`` are merged into the session's shared state when the step completes.

    ``subtasks`` (PlanStep objects or their JSON documents) decompose the step instead: they are
    validated and scheduled under it, and the step runs again once they completed, with their
    outputs in ``step_input.subtask_outputs``. A decomposing run's output and state updates are
    not recorded. Guards: MEOWSTIK_MAX_PLAN_DEPTH, MEOWSTIK_MAX_DECOMPOSITIONS, and a sub-plan
    equal to one this step or an ancestor already returned fails the step.

    ``usage`` and ``cost_usd`` report what the agent spent by itself (calls through
    ``step_input.llm`` are counted already): counted once, with the completion.
    """

    output: Any = None
    state_updates: dict[str, Any] = field(default_factory=dict)
    subtasks: list[Any] = field(default_factory=list)
    # what the agent spent outside ``step_input.llm`` (its own model calls, a paid API): tokens
    # (a Usage, or {"promptTokens", "completionTokens"}) and dollars (a number or a decimal
    # string), counted with the session's costs when the step completes
    usage: Any = None
    cost_usd: Any = None


_NO_DEFAULT = object()


class InputRequired(Exception):  # noqa: N818 - a signal, not an error
    """Raised by an agent to ask an operator for input. The step then waits holding no worker
    and no broker message; when answered it runs again from its start, with the answer in
    ``step_input.operator_input`` (``step_input.input_provided`` is then True).

    Args:
        question: what to ask, shown in the API, CLI and dashboard.
        schema: optional JSON Schema the answer must satisfy.
        timeout_s: how long to wait (default MEOWSTIK_INPUT_TIMEOUT_S).
        default: the answer used when the deadline passes; without one the step fails then.
    """

    def __init__(
        self,
        question: str,
        *,
        schema: dict[str, Any] | None = None,
        timeout_s: float | None = None,
        default: Any = _NO_DEFAULT,
    ) -> None:
        super().__init__(question)
        self.question = question
        self.schema = schema
        self.timeout_s = timeout_s
        self.default = default

    @property
    def has_default(self) -> bool:
        return self.default is not _NO_DEFAULT
