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


class HttpAgent(Agent):
    """Runs an agent registered with ``executor: http``: each step's context
    (``StepInput.as_context()``) is POSTed to its endpoint. The endpoint answers with
    ``{"output": ..., "stateUpdates": {...}}`` (or ``{"subtasks": [...]}`` to decompose the
    step), or any other JSON document, which becomes the output as is."""

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

    def run(self, step_input: StepInput) -> StepResult:
        """POST the step's context and turn the reply into a StepResult.

        Raises:
            EndpointNotAllowedError: the endpoint is no longer allowed by the settings.
            RetryableStepError, PermanentStepError: see the docstring of ``transport``.
        """
        endpoint = check_agent_endpoint(self.definition.endpoint or "", self._settings)
        service = f"HTTP agent {self.definition.id!r} at {describe_url(endpoint)}"
        reply = post_json(
            endpoint,
            step_input.as_context(),
            service=service,
            timeout_s=self.definition.timeout_s,
            max_retries=self._settings.http_agent_max_retries,
            sleep=self._sleep,
            guard_addresses=True,
        )
        document = decode_json(reply, service)
        if is_envelope(document):
            return result_from_envelope(document, service)
        return StepResult(output=document)
