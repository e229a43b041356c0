"""Which model a step's agent gets as ``step_input.llm``, bound to the step.

An LLM agent (``executor: llm``) uses its endpoint (``baseUrl`` by name, else the default) and
model; a Python agent gets the same when it names an endpoint or when MEOWSTIK_LLM_BASE_URL is
set, and ``None`` otherwise (then the built-in agents work offline). HTTP agents pick their own
model. The model may call the tools its agent's capabilities name (``capabilities[].tools``)
that this worker has registered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from orchestrator.core.models import AgentDefinition, AgentExecutor
from orchestrator.core.prices import load_prices
from orchestrator.core.steps import StepInput
from orchestrator.core.tools import ToolRegistry, agent_tools
from orchestrator.settings import Settings
from orchestrator.store.turns import TurnJournal
from workers.executors.llm import agent_endpoint, llm_available
from workers.executors.model_client import ModelClient
from workers.executors.tool_loop import CallBudget, DeltaSink, DurableModel
from workers.executors.transport import Sleep

DeltaFactory = Callable[[str, str, str], DeltaSink]  # (session id, step id, agent id)


class ModelBinder:
    """Builds each step run's ``DurableModel``.

    Args:
        settings: the endpoints, MEOWSTIK_LLM_MAX_TURNS and _STREAM.
        tools: the tools registered on this worker.
        journal: where the steps' calls are recorded.
        deltas: opens the sink a streamed call's text goes to (None: no streaming events).
        now_ms: the clock records are stamped with.
    """

    def __init__(
        self,
        settings: Settings,
        tools: ToolRegistry,
        journal: TurnJournal,
        *,
        deltas: DeltaFactory | None = None,
        fleet_capabilities: Callable[[], list[str]] | None = None,
        now_ms: Callable[[], int],
        sleep: Sleep = time.sleep,
    ) -> None:
        self.settings = settings
        self.tools = tools
        self.journal = journal
        self.deltas = deltas
        self.fleet_capabilities = fleet_capabilities
        self.prices = load_prices(settings.prices_file)
        self.now_ms = now_ms
        self.sleep = sleep

    def uses_model(self, definition: AgentDefinition) -> bool:
        if definition.executor == AgentExecutor.HTTP:
            return False
        if definition.executor == AgentExecutor.LLM or definition.base_url is not None:
            return True
        return llm_available(self.settings)

    def bind(
        self, definition: AgentDefinition, step_input: StepInput, budget: CallBudget | None = None
    ) -> tuple[StepInput, DurableModel | None]:
        """The step's input with its model (``llm``) and the fleet's capabilities, and the
        model; the input as it was and None when the agent has no model. PermanentStepError
        when the agent names an endpoint this worker lacks."""
        if not self.uses_model(definition):
            return step_input, None
        endpoint = agent_endpoint(definition, self.settings)
        client = ModelClient(
            endpoint.base_url,
            endpoint.api_key_value,
            definition.model or endpoint.model or self.settings.llm_model,
            # each request within the run's time limit too, when it is shorter
            min(self.settings.llm_timeout_s, step_input.timeout_s or self.settings.llm_timeout_s),
            self.settings.http_agent_max_retries,
            endpoint_name=endpoint.name,
            sleep=self.sleep,
        )
        ids = (step_input.session_id, step_input.step_id, definition.id)
        deltas = self.deltas
        stream = self.settings.llm_stream if definition.stream is None else definition.stream
        model = DurableModel(
            client,
            self.tools,
            self.journal.bound(*ids),
            step_input,
            allowed_tools=agent_tools(definition),
            max_turns=self.settings.llm_max_turns,
            stream=stream,
            deltas=(lambda: deltas(*ids)) if deltas is not None else None,
            temperature=definition.temperature,
            max_tokens=definition.max_tokens,
            prices=self.prices,
            budget=budget,
            now_ms=self.now_ms,
        )
        step_input = replace(step_input, llm=model, fleet_capabilities=self.fleet_capabilities)
        model.step_input = step_input  # its tools get the step with its model
        return step_input, model
