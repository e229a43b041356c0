"""LLM agents: a step is given to an OpenAI-compatible chat model, whose reply is the result.

The model is asked for ``{"output": ..., "stateUpdates": {...}}``. A reply in that shape (bare
or in a ```json fence) is used as is; any other reply is kept verbatim as text, so the step's
result never holds anything the model did not say. The call goes through ``ModelClient``
(model_client.py: the openai SDK, its errors mapped to RetryableStepError and
PermanentStepError). ``ChatClient`` is the same client as the planner's ``ChatModel``.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from orchestrator.core.errors import ConfigurationError, PermanentStepError
from orchestrator.core.llm_endpoints import DEFAULT_ENDPOINT, LlmEndpoint
from orchestrator.core.models import AgentDefinition, AgentExecutor
from orchestrator.core.steps import StepInput, StepResult
from orchestrator.core.tools import agent_tools
from orchestrator.settings import Settings
from workers.agents.base import Agent
from workers.executors.http_agent import is_envelope, result_from_envelope
from workers.executors.model_client import ModelClient
from workers.executors.model_reply import ModelReply
from workers.executors.transport import Sleep

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
    """The planner's chat model (``orchestrator.planning.llm.ChatModel``): the reply text of an
    OpenAI-compatible ``/chat/completions`` API, through ``ModelClient``.

    Args:
        base_url: the API base, e.g. ``http://localhost:11434/v1``.
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
        self.client = ModelClient(base_url, api_key, model, timeout_s, max_retries, sleep=sleep)
        self.model = model

    @property
    def service(self) -> str:
        """How error messages name this API."""
        return self.client.service

    def complete(self, messages: list[dict[str, Any]]) -> str:
        """The text of the model's first choice for ``messages``.

        Raises:
            RetryableStepError: 429, 5xx, connection errors or timeouts, after the retries.
            PermanentStepError: another 4xx (a bad key, an unknown model), a truncated reply,
                or a reply that is not a chat completion or holds no text.
        """
        return reply_text(self.client.complete(messages, temperature=TEMPERATURE), self.service)


def reply_text(reply: ModelReply, service: str) -> str:
    """The reply's text, or PermanentStepError saying why there is none (no tools are offered
    yet, so a reply with only tool calls cannot be used)."""
    if reply.content is not None:
        return reply.content
    if reply.tool_calls:
        names = sorted({call.name for call in reply.tool_calls})
        raise PermanentStepError(
            f"{service} answered with tool calls {names} and no text, but no tools were "
            "offered; the model or its chat template may call tools on its own.",
            details={"toolCalls": names},
        )
    raise PermanentStepError(
        f"{service} answered without choices[0].message.content (finish_reason "
        f"{reply.finish_reason!r}); the model may have refused.",
        details={"finishReason": reply.finish_reason},
    )


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
    """The chat for one step: the system prompt, then the step's context as JSON (without the
    attempt number, so a retried step asks the same and replays its recorded calls)."""
    context = step_input.as_context()
    context.pop("attempt", None)
    return [
        {"role": "system", "content": system_prompt(definition)},
        {"role": "user", "content": json.dumps(context)},
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
    """Runs an agent registered with ``executor: llm``: its step is a chat with its model
    (``step_input.llm``, a durable tool loop: workers/executors/tool_loop.py), which may call
    the tools named by the agent's capabilities that the step requires.

    The endpoint is the one the agent names in ``baseUrl`` (MEOWSTIK_LLM_ENDPOINTS), else the
    default (MEOWSTIK_LLM_BASE_URL, _API_KEY); the model is the agent's ``model``, else the
    endpoint's, else MEOWSTIK_LLM_MODEL; ``temperature``, ``maxTokens``, ``systemPrompt`` and
    ``stream`` come from the agent when it sets them. Each call is logged with its usage.

    Raises:
        PermanentStepError: on construction, when the endpoint is not configured here or the
            definition is not an LLM agent's.
    """

    def __init__(self, definition: AgentDefinition, settings: Settings) -> None:
        if definition.executor != AgentExecutor.LLM:
            raise PermanentStepError(
                f"agent {definition.id!r} has executor {definition.executor.value!r}, not 'llm'; "
                "it cannot run as an LLM agent.",
                details={"agentId": definition.id, "executor": definition.executor.value},
            )
        agent_endpoint(definition, settings)  # fail now when this worker cannot reach it
        self.definition = definition

    def run(self, step_input: StepInput) -> StepResult:
        """Chat with the model about the step (with its tools), and parse its answer."""
        llm = step_input.llm
        if llm is None:
            raise PermanentStepError(
                f"agent {self.definition.id!r} needs a model but this step has none "
                "(step_input.llm); run it on a worker with MEOWSTIK_LLM_BASE_URL set.",
                details={"agentId": self.definition.id},
            )
        tools = self.step_tools(step_input, getattr(llm, "tools", None))
        temperature = self.definition.temperature
        outcome = llm.chat(
            build_messages(self.definition, step_input),
            tools=tools,
            temperature=TEMPERATURE if temperature is None else temperature,
        )
        service = getattr(getattr(llm, "client", None), "service", f"model {llm.model!r}")
        return parse_reply(reply_text(outcome.reply, service), outcome.model, service)

    def step_tools(self, step_input: StepInput, registered: Any) -> list[str]:
        """The tools of the capabilities the step requires, without those this worker has not
        registered (named in the step's log: the spec's example names ``custom_tool``)."""
        named = agent_tools(self.definition, step_input.step.required_capabilities)
        if registered is None:
            return named
        missing = [name for name in named if name not in registered]
        if missing and step_input.logger is not None:
            step_input.logger.warn(
                "tools not registered on this worker are not offered to the model",
                tools=missing,
            )
        return [name for name in named if name in registered]


def agent_endpoint(definition: AgentDefinition, settings: Settings) -> LlmEndpoint:
    """The endpoint an LLM agent uses, or PermanentStepError saying what to configure."""
    if definition.base_url is None and not llm_available(settings):
        raise PermanentStepError(
            "no LLM configured: set MEOWSTIK_LLM_BASE_URL",
            details={"agentId": definition.id, "setting": "MEOWSTIK_LLM_BASE_URL"},
        )
    try:
        endpoints = settings.llm_endpoint_table()
    except ConfigurationError as exc:
        raise PermanentStepError(str(exc), details={"agentId": definition.id}) from exc
    name = definition.base_url or DEFAULT_ENDPOINT
    if name not in endpoints:
        raise PermanentStepError(
            f"agent {definition.id!r} names LLM endpoint {name!r} (baseUrl), which this worker "
            f"does not have; configured: {sorted(endpoints)}. Add it to MEOWSTIK_LLM_ENDPOINTS "
            "on the workers running LLM agents.",
            details={"agentId": definition.id, "baseUrl": name, "configured": sorted(endpoints)},
        )
    return endpoints[name]
