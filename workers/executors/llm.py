"""LLM agents: a step is given to an OpenAI-compatible chat model, whose reply is the result.

The model is asked for ``{"output": ..., "stateUpdates": {...}}``. A reply in that shape (bare
or in a ```json fence) is used as is; any other reply is kept verbatim as text, so the step's
result never holds anything the model did not say. HTTP failures map to RetryableStepError and
PermanentStepError exactly as for HTTP agents (see ``http_agent.post_json``).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from orchestrator.core.errors import PermanentStepError
from orchestrator.core.models import AgentDefinition, AgentExecutor
from orchestrator.core.steps import StepInput, StepResult
from orchestrator.settings import Settings
from workers.agents.base import Agent
from workers.executors.http_agent import (
    Sleep,
    decode_json,
    describe_url,
    is_envelope,
    post_json,
    result_from_envelope,
)

TEMPERATURE = 0.2
DEFAULT_CHAT_MAX_RETRIES = 2
_FENCE = re.compile(r"^```[A-Za-z]*[ \t]*\n(?P<body>.*?)\n?```$", re.DOTALL)
_ANSWER_FORMAT = (
    'Answer with one JSON object and nothing else: {"output": <your result>, "stateUpdates": '
    "{<key-value pairs later steps should see; may be empty>}}. When something you need is "
    "missing, say so in the output instead of inventing it."
)


def llm_available(settings: Settings) -> bool:
    """Whether an LLM is configured (MEOWSTIK_LLM_BASE_URL is set)."""
    return bool(settings.llm_base_url)


class ChatClient:
    """A minimal client for an OpenAI-compatible ``/chat/completions`` API.

    Args:
        base_url: the API base, e.g. ``http://localhost:11434/v1`` (``/chat/completions`` is
            appended).
        api_key: sent as a Bearer token when given; never put in messages.
        timeout_s: bound on each request.
        max_retries: in-process retries for connection errors, timeouts, 429 and 5xx.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None,
        timeout_s: float,
        *,
        max_retries: int = DEFAULT_CHAT_MAX_RETRIES,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self._api_key = api_key
        self._sleep = sleep

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    @property
    def service(self) -> str:
        """How error messages name this API."""
        return f"LLM API at {describe_url(self.url)} (model {self.model!r})"

    def complete(self, messages: list[dict[str, Any]]) -> str:
        """The content of the model's first choice for ``messages``.

        Raises:
            RetryableStepError: 429, 5xx, connection errors or timeouts, after the retries.
            PermanentStepError: another 4xx (a bad key, an unknown model), or a reply that is
                not a chat completion.
        """
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        reply = post_json(
            self.url,
            {"model": self.model, "messages": messages, "temperature": TEMPERATURE},
            service=self.service,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            headers=headers,
            sleep=self._sleep,
        )
        return _message_content(decode_json(reply, self.service), self.service)


def _message_content(document: Any, service: str) -> str:
    """``choices[0].message.content``, or PermanentStepError saying the reply is malformed."""
    try:
        content = document["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        start = json.dumps(document)[:200]
        raise PermanentStepError(
            f"{service} answered without choices[0].message.content (reply starts {start!r}). "
            "Check that MEOWSTIK_LLM_BASE_URL points at an OpenAI-compatible API, usually "
            "ending in /v1.",
            details={"reply": start},
        ) from exc
    if not isinstance(content, str):
        raise PermanentStepError(
            f"{service} answered with message content of type {type(content).__name__}, not "
            "text; the model may have refused or called a tool.",
            details={"contentType": type(content).__name__},
        )
    return content


def system_prompt(definition: AgentDefinition) -> str:
    """The agent's own system prompt, or a default describing who it is and how to answer."""
    if definition.system_prompt:
        return definition.system_prompt
    capabilities = "\n".join(
        f"- {capability.name}" + (f": {capability.description}" if capability.description else "")
        for capability in definition.capabilities
    )
    lines = [
        f"You are {definition.name}, an agent of type {definition.type!r} in a multi-agent "
        "orchestration system.",
        definition.description,
        f"Your capabilities:\n{capabilities}",
        "You are given one step of a larger plan as a JSON document: the session's goal, the "
        "step (title, description, parameters), the initial context, the shared state, and the "
        "outputs of the steps it depends on (dependencies, keyed by step id). Do that step.",
        _ANSWER_FORMAT,
    ]
    return "\n\n".join(line for line in lines if line)


def build_messages(definition: AgentDefinition, step_input: StepInput) -> list[dict[str, str]]:
    """The chat for one step: the system prompt, then the step's context as JSON."""
    return [
        {"role": "system", "content": system_prompt(definition)},
        {"role": "user", "content": json.dumps(step_input.as_context())},
    ]


def parse_reply(reply: str, model: str, service: str) -> StepResult:
    """The StepResult for a model's reply: its ``{"output", "stateUpdates"}`` object when it
    gave one (bare or fenced), else the reply verbatim as ``{"text", "mode", "model"}``.

    Raises:
        PermanentStepError: the object's stateUpdates is not an object.
    """
    text = reply.strip()
    fenced = _FENCE.match(text)
    candidate = fenced.group("body") if fenced else text
    try:
        document = json.loads(candidate)
    except (ValueError, RecursionError):
        document = None
    if is_envelope(document):
        return result_from_envelope(document, service)
    return StepResult(output={"text": reply, "mode": "llm", "model": model})


class LlmAgent(Agent):
    """Runs an agent registered with ``executor: llm`` by asking the configured chat model.

    Uses MEOWSTIK_LLM_BASE_URL, MEOWSTIK_LLM_MODEL, MEOWSTIK_LLM_API_KEY and
    MEOWSTIK_LLM_TIMEOUT_S (the operator's bound for model calls, which are slower than most
    HTTP agents), with the same in-process retry budget as HTTP agents.

    Raises:
        PermanentStepError: on construction, when no LLM is configured or the definition is not
            an LLM agent's.
    """

    def __init__(
        self, definition: AgentDefinition, settings: Settings, *, sleep: Sleep = time.sleep
    ) -> None:
        if not llm_available(settings):
            raise PermanentStepError(
                "no LLM configured: set MEOWSTIK_LLM_BASE_URL",
                details={"agentId": definition.id, "setting": "MEOWSTIK_LLM_BASE_URL"},
            )
        if definition.executor != AgentExecutor.LLM:
            raise PermanentStepError(
                f"agent {definition.id!r} has executor {definition.executor.value!r}, not 'llm'; "
                "it cannot run as an LLM agent.",
                details={"agentId": definition.id, "executor": definition.executor.value},
            )
        self.definition = definition
        api_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        self.client = ChatClient(
            settings.llm_base_url or "",
            settings.llm_model,
            api_key,
            settings.llm_timeout_s,
            max_retries=settings.http_agent_max_retries,
            sleep=sleep,
        )

    def run(self, step_input: StepInput) -> StepResult:
        """Ask the model to do the step and parse its answer."""
        reply = self.client.complete(build_messages(self.definition, step_input))
        return parse_reply(reply, self.client.model, self.client.service)
