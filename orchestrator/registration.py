"""Rules for agents registered over the API (pure): an agent must have something that can
execute it, and clients may not set what the orchestrator manages."""

from __future__ import annotations

from typing import Any

from orchestrator.endpoints import check_endpoint
from orchestrator.errors import OrchestratorError
from orchestrator.models import AgentDefinition, AgentExecutor
from orchestrator.settings import Settings
from orchestrator.statuses import AgentStatus


class RegistrationError(OrchestratorError):
    code = "agent_not_executable"
    http_status = 422


class AgentExistsError(OrchestratorError):
    code = "agent_exists"
    http_status = 409

    def __init__(self, agent_id: str) -> None:
        super().__init__(
            f"an agent with id {agent_id!r} is already registered; change it with "
            f"PATCH /api/orchestrator/agents/{agent_id}, or DELETE it first",
            details={"agentId": agent_id},
        )


def resolve_executor(
    body: dict[str, Any], definition: AgentDefinition, settings: Settings
) -> AgentDefinition:
    """Decide what executes an agent registered over REST, or raise RegistrationError saying why
    nothing can.

    Without an explicit ``executor``: an ``endpoint`` makes it an HTTP agent; otherwise an LLM
    agent when an LLM is configured (the spec's custom-agent body then works as is).
    """
    if definition.current_load != 0:
        raise RegistrationError(
            "currentLoad is managed by the orchestrator; omit it or send 0",
            details={"field": "currentLoad", "value": definition.current_load},
        )
    if definition.status == AgentStatus.OFFLINE:
        raise RegistrationError(
            "status 'offline' is derived from heartbeats; register as active, inactive or draining",
            details={"field": "status"},
        )
    executor = definition.executor
    if "executor" not in body:
        executor = AgentExecutor.HTTP if definition.endpoint else AgentExecutor.LLM
    if executor == AgentExecutor.PYTHON:
        raise RegistrationError(
            "python agents are registered by the `meowstik worker` processes that host them; "
            "register an HTTP agent (give an endpoint) or an LLM agent instead",
            details={"field": "executor"},
        )
    if executor == AgentExecutor.HTTP:
        if not definition.endpoint:
            raise RegistrationError(
                "an HTTP agent needs an endpoint URL that receives each step as a JSON POST",
                details={"field": "endpoint"},
            )
        return definition.model_copy(
            update={"executor": executor, "endpoint": check_endpoint(definition.endpoint, settings)}
        )
    if not settings.llm_base_url:
        raise RegistrationError(
            f"nothing can execute agent {definition.id!r}: it has no endpoint and no LLM is "
            "configured. Give an 'endpoint' (an HTTP agent), or set MEOWSTIK_LLM_BASE_URL so "
            "it runs as an LLM agent",
            details={"agentId": definition.id, "fix": ["endpoint", "MEOWSTIK_LLM_BASE_URL"]},
        )
    return definition.model_copy(update={"executor": executor, "endpoint": None})
