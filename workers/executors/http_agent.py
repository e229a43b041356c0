"""HTTP agents: a step's context is POSTed as JSON to the agent's endpoint, and the JSON reply
is the step's result. Also the parsing of such replies (JSON, the ``{"output", "stateUpdates"}``
or ``{"subtasks"}`` envelope) that the LLM executor shares.

The POST itself, its retries and how its failures map to RetryableStepError and
PermanentStepError, is ``transport.post_json``; it connects through ``address_guard``, so an
agent's name that resolves to an always-blocked address is refused.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from orchestrator.core.errors import PermanentStepError
from orchestrator.core.models import AgentDefinition, AgentExecutor
from orchestrator.core.registration import check_agent_endpoint
from orchestrator.core.steps import StepInput, StepResult
from orchestrator.settings import Settings
from workers.agents.base import Agent
from workers.executors.transport import HttpReply, Sleep, describe_url, post_json


def decode_json(reply: HttpReply, service: str) -> Any:
    """The reply's JSON value. Raises PermanentStepError naming the content type if it is not
    JSON (an HTML error page from a proxy, plain text, an empty body)."""
    try:
        return json.loads(reply.body)
    except (ValueError, RecursionError) as exc:
        start = reply.body[:200].decode("utf-8", errors="replace")
        raise PermanentStepError(
            f"{service} answered HTTP {reply.status} with {reply.content_type} that is not "
            f"JSON (starts {start!r}); it must answer with a JSON document.",
            details={"status": reply.status, "contentType": reply.content_type},
        ) from exc


def is_envelope(document: Any) -> bool:
    """Whether an agent's JSON answer is an envelope (output and/or subtasks), not a bare output."""
    return isinstance(document, dict) and ("output" in document or "subtasks" in document)


def result_from_envelope(document: dict[str, Any], service: str) -> StepResult:
    """A StepResult from ``{"output": ..., "stateUpdates": {...}}``, or from
    ``{"subtasks": [plan steps]}`` to decompose the step (it runs again after them).

    Raises:
        PermanentStepError: stateUpdates is present but not an object (merging anything else
            into the shared state would corrupt it), or subtasks is not a list.
    """
    subtasks = document.get("subtasks") or []
    if not isinstance(subtasks, list):
        raise PermanentStepError(
            f"{service} answered with subtasks of type {type(subtasks).__name__}; it must be a "
            "list of plan steps (or absent).",
            details={"subtasksType": type(subtasks).__name__},
        )
    state_updates = document.get("stateUpdates")
    if state_updates is None:
        state_updates = {}
    if not isinstance(state_updates, dict) or not all(isinstance(k, str) for k in state_updates):
        raise PermanentStepError(
            f"{service} answered with stateUpdates of type {type(state_updates).__name__}; it "
            "must be a JSON object (or absent).",
            details={"stateUpdatesType": type(state_updates).__name__},
        )
    return StepResult(output=document.get("output"), state_updates=state_updates, subtasks=subtasks)


TYPED_ENTRY_FIELDS = frozenset({"value", "type", "ttlS"})
# the request timeout when no time limit applies to the run (no step, agent or default timeoutS)
DEFAULT_REQUEST_TIMEOUT_S = 30.0
TYPES = ("shared", "temporary", "private")


def is_typed_entry(value: Any) -> bool:
    """A stateUpdates entry that names its scope: ``{"value": v, "type": "temporary", "ttlS":
    30}`` (or type private / shared). Any other value is a shared value as it stands; a shared
    value of exactly that shape must itself be wrapped as ``{"value": ..., "type": "shared"}``."""
    return (
        isinstance(value, dict)
        and "value" in value
        and value.get("type") in TYPES
        and set(value) <= TYPED_ENTRY_FIELDS
    )


def apply_typed_updates(result: StepResult, step_input: StepInput) -> StepResult:
    """Write the typed stateUpdates entries at once through ``step_input.state`` (temporary
    with their TTL, private to this agent, shared versioned like any write) and leave the plain
    ones to the step's completion, which records them atomically with its output.

    Raises StateValidationError (a bad TTL, key or value): the step fails with it.
    """
    typed = {k: v for k, v in result.state_updates.items() if is_typed_entry(v)}
    if not typed or step_input.state is None:
        return result
    state = step_input.state
    for key, entry in typed.items():
        if entry["type"] == "private":
            state.private.set(key, entry["value"])
        else:
            state.set(key, entry["value"], type=entry["type"], ttl_s=entry.get("ttlS"))
    plain = {k: v for k, v in result.state_updates.items() if k not in typed}
    return StepResult(output=result.output, state_updates=plain, subtasks=result.subtasks)


class HttpAgent(Agent):
    """Runs an agent registered with ``executor: http``: each step's context
    (``StepInput.as_context()`` plus ``privateState``, the agent's own entries) is POSTed to its
    endpoint. The endpoint answers with ``{"output": ..., "stateUpdates": {...}}`` (or
    ``{"subtasks": [...]}`` to decompose the step), or any other JSON document, which becomes
    the output as is. A stateUpdates entry may name its scope: see ``is_typed_entry``."""

    def __init__(
        self, definition: AgentDefinition, settings: Settings, *, sleep: Sleep = time.sleep
    ) -> None:
        if definition.executor != AgentExecutor.HTTP or not definition.endpoint:
            raise PermanentStepError(
                f"agent {definition.id!r} is not an HTTP agent with an endpoint (executor "
                f"{definition.executor.value!r}, endpoint {definition.endpoint!r}); register it "
                "with executor 'http' and an endpoint URL.",
                details={"agentId": definition.id, "executor": definition.executor.value},
            )
        self.definition = definition
        self._settings = settings
        self._sleep = sleep

    def request_timeout_s(self, step_input: StepInput) -> float:
        """Each request's timeout: the run's time limit (which the runtime stops the run at),
        else the agent's ``timeoutS``, else DEFAULT_REQUEST_TIMEOUT_S."""
        return step_input.timeout_s or self.definition.timeout_s or DEFAULT_REQUEST_TIMEOUT_S

    def run(self, step_input: StepInput) -> StepResult:
        """POST the step's context and turn the reply into a StepResult.

        Raises:
            EndpointNotAllowedError: the endpoint is no longer allowed by the settings.
            RetryableStepError, PermanentStepError: see the docstring of ``transport``.
        """
        endpoint = check_agent_endpoint(self.definition.endpoint or "", self._settings)
        service = f"HTTP agent {self.definition.id!r} at {describe_url(endpoint)}"
        state = step_input.state
        context = step_input.as_context(state.private.entries() if state is not None else None)
        reply = post_json(
            endpoint,
            context,
            service=service,
            timeout_s=self.request_timeout_s(step_input),
            max_retries=self._settings.http_agent_max_retries,
            sleep=self._sleep,
            guard_addresses=True,
            signing_keys=self._settings.signing_keys,
        )
        document = decode_json(reply, service)
        if is_envelope(document):
            result = apply_typed_updates(result_from_envelope(document, service), step_input)
            # what the agent spent by itself (its own model calls), counted with the completion
            return replace(result, usage=document.get("usage"), cost_usd=document.get("costUsd"))
        return StepResult(output=document)
