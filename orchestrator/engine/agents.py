"""The agent registry as a service: what the API's agent routes and the dashboard do, each one
call. Registration checks the definition (who could run it, endpoint rules, the tools its
capabilities name), creates the agent atomically, and offers its capacity to steps waiting for
it; a change of status or maxLoad offers capacity too.

The tool check needs the registered tool names, which the API gives (it loads the tool catalogue
of workers/tools/catalog.py); the engine itself never imports the workers. Python agents are
registered by their workers through the store, not here, so their tools are not checked: a
tool their code names but nobody registered is an error result when the model calls it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

from orchestrator.core.agent_metrics import WINDOWS, AgentDetail, AgentMetrics, Window
from orchestrator.core.errors import ApiError
from orchestrator.core.graph import check_metadata
from orchestrator.core.models import AgentDefinition, AgentUpdate, RegisteredAgent
from orchestrator.core.registration import resolve_executor
from orchestrator.core.statuses import AGENT_DERIVED, AgentStatus
from orchestrator.core.tools import check_agent_tools, missing_tools
from orchestrator.engine.context import EngineContext
from orchestrator.engine.routing import Router


class Agents:
    def __init__(
        self, context: EngineContext, router: Router, *, tool_names: Collection[str] | None = None
    ) -> None:
        self.context = context
        self.registry = context.registry
        self.router = router
        self.tool_names = None if tool_names is None else frozenset(tool_names)

    def list(self) -> list[RegisteredAgent]:
        return [self._with_tools(a) for a in self.registry.list(self.context.now_ms())]

    def get(self, agent_id: str) -> RegisteredAgent:
        """Raises AgentNotFoundError (404)."""
        return self._with_tools(self.registry.get(agent_id, self.context.now_ms()))

    def detail(self, agent_id: str) -> AgentDetail:
        """The agent with its metrics over the last hour, day and all time (404 if unknown)."""
        agent = self.get(agent_id)
        now = self.context.now_ms()
        metrics = {
            window: self.registry.metrics.read(agent_id, window, now).model_copy(
                update={"by_capability": {}}
            )
            for window in WINDOWS
        }
        return AgentDetail(**agent.model_dump(), metrics=metrics)

    def metrics(self, agent_id: str, window: Window) -> AgentMetrics:
        """The agent's metrics over one window (404 if the agent is unknown)."""
        self.registry.get(agent_id, self.context.now_ms())
        return self.registry.metrics.read(agent_id, window, self.context.now_ms())

    def metrics_of(self, agent_ids: Sequence[str], window: Window) -> dict[str, AgentMetrics]:
        return self.registry.metrics.read_many(agent_ids, window, self.context.now_ms())

    def _with_tools(self, agent: RegisteredAgent) -> RegisteredAgent:
        """``missingTools``: what its capabilities name that no tool catalogue here has."""
        if self.tool_names is None:
            return agent
        missing = missing_tools(agent, self.tool_names)
        return agent.model_copy(update={"missing_tools": missing}) if missing else agent

    def register(self, body: dict[str, Any]) -> RegisteredAgent:
        """Register an HTTP or LLM agent from the spec's body (Python agents register from
        their workers). An agent nothing alive can run yet is listed ``unhosted``.

        Raises:
            ValidationError (422): the body is not an agent definition.
            RegistrationError, EndpointNotAllowedError (422): nothing here could run it.
            UnknownToolError (422): a capability names a tool that is not registered, with
                MEOWSTIK_REQUIRE_REGISTERED_TOOLS (otherwise it is listed in ``missingTools``).
            AgentExistsError (409): the id is taken (checked and written atomically).
        """
        definition = resolve_executor(
            body, AgentDefinition.model_validate(body), self.context.settings
        )
        if self.tool_names is not None and self.context.settings.require_registered_tools:
            check_agent_tools(definition, self.tool_names)
        self.registry.create_remote(definition, now_ms=self.context.now_ms())
        self.router.offer_capacity(definition.id)
        return self.get(definition.id)

    def update(self, agent_id: str, change: AgentUpdate) -> RegisteredAgent:
        """Change status (active, inactive, draining), priority, maxLoad, name, description,
        metadata or timeoutS (null removes it); more room, or active again, is offered to
        waiting steps at once."""
        if change.metadata is not None:
            check_metadata(change.metadata, self.context.settings, "body.metadata")
        if change.status is not None and change.status in AGENT_DERIVED:
            raise ApiError(
                422,
                "validation_error",
                f"status {change.status.value!r} is derived from heartbeats and cannot be set",
                {
                    "errors": [
                        {
                            "location": "body.status",
                            "message": "use active, inactive or draining",
                            "type": "value_error",
                        }
                    ]
                },
            )
        updated = self.registry.update(agent_id, change, self.context.now_ms())
        self.router.offer_capacity(agent_id)
        return updated

    def delete(self, agent_id: str) -> RegisteredAgent:
        return self.registry.delete(agent_id, self.context.now_ms())

    def stats(self) -> dict[str, Any]:
        """The spec's statistics, computed from the same records ``list`` shows."""
        agents = self.list()
        active = [a for a in agents if a.status == AgentStatus.ACTIVE]
        return {
            "totalAgents": len(agents),
            "activeAgents": len(active),
            "busyAgents": sum(1 for a in agents if a.current_load > 0),
            "totalCapacity": sum(a.max_load for a in active),
            "usedCapacity": sum(a.current_load for a in agents),
            "agentsByType": dict(Counter(a.type for a in agents)),
        }

    def autoscaler(self) -> dict[str, Any]:
        """The autoscaler's record with ``enabled`` true, or a disabled status without one
        (its record expires a few intervals after it stops looking)."""
        record = self.registry.autoscaler_record()
        if record is None:
            return {"enabled": False, "agents": []}
        return {"enabled": True, **record}
