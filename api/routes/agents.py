"""/api/orchestrator/agents and /stats: the registry over REST."""

from __future__ import annotations

from flask import Blueprint, jsonify
from pydantic import Field

from api import schemas
from api.body import json_body, query_args
from api.operations import BODY, BY_ID, LOCATION, STORE, Operation, ok, path_param
from api.routes import services
from orchestrator.core.agent_metrics import AgentDetail, AgentMetrics, Window
from orchestrator.core.models import AgentDefinition, AgentUpdate, RegisteredAgent, RequestModel

blueprint = Blueprint("agents", __name__, url_prefix="/api/orchestrator")


class AgentListQuery(RequestModel):
    """?metrics=1h|24h|all: each agent with its metrics over that window (one read for all)."""

    metrics: Window | None = Field(
        default=None, description="add each agent's metrics over this window: 1h, 24h or all"
    )


@blueprint.get("/agents")
def list_agents():
    """The registered agents; with ?metrics=<window>, each with ``metrics`` over it."""
    query = query_args(AgentListQuery)
    service = services().agents
    agents = service.list()
    listed = [agent.to_json_dict() for agent in agents]
    if query.metrics is not None:
        metrics = service.metrics_of([agent.id for agent in agents], query.metrics)
        for document, agent in zip(listed, agents, strict=True):
            document["metrics"] = metrics[agent.id].to_json_dict()
    return jsonify({"agents": listed, "count": len(listed)})


@blueprint.post("/agents")
def register_agent():
    """Register an HTTP or LLM agent (python agents register from their workers)."""
    registered = services().agents.register(json_body())
    response = jsonify(registered.to_json_dict())
    response.status_code = 201
    response.headers["Location"] = f"/api/orchestrator/agents/{registered.id}"
    return response


@blueprint.get("/agents/<agent_id>")
def get_agent(agent_id: str):
    """The agent, with ``metrics`` over the last hour, the last day and all time."""
    return jsonify(services().agents.detail(agent_id).to_json_dict())


class MetricsQuery(RequestModel):
    """?window=1h|24h|all (default 24h)."""

    window: Window = "24h"


@blueprint.get("/agents/<agent_id>/metrics")
def agent_metrics(agent_id: str):
    """How the agent did across sessions in a window: runs started, succeeded, failed (by error
    type), retried, fell back, timed out; success rate; run and queue-wait p50/p95; cost; and,
    all time, the same per capability."""
    query = query_args(MetricsQuery)
    return jsonify(services().agents.metrics(agent_id, query.window).to_json_dict())


@blueprint.patch("/agents/<agent_id>")
def update_agent(agent_id: str):
    """Change status (active, inactive, draining), priority, maxLoad, name, description, metadata.
    Draining finishes current work and takes no new."""
    change = AgentUpdate.model_validate(json_body())
    return jsonify(services().agents.update(agent_id, change).to_json_dict())


@blueprint.delete("/agents/<agent_id>")
def delete_agent(agent_id: str):
    removed = services().agents.delete(agent_id)
    return jsonify({"deleted": True, "agent": removed.to_json_dict()})


@blueprint.get("/stats")
def stats():
    """The spec's statistics, computed from the same records GET /agents shows."""
    return jsonify(services().agents.stats())


@blueprint.get("/autoscaler")
def autoscaler_status():
    """What `meowstik up --autoscale` last decided, per hosted agent; ``enabled`` is false when
    no autoscaler has looked recently (its record expires a few intervals after it stops)."""
    return jsonify(services().agents.autoscaler())


AGENT_ID = path_param("agent_id", "the agent id")

OPERATIONS = (
    Operation(
        "get",
        "/api/orchestrator/agents",
        "agents.list_agents",
        "Registered agents with live status, load and circuit (and metrics over a window)",
        "agents",
        {200: ok(schemas.AgentList)},
        query=AgentListQuery,
        errors=(422, *STORE),
    ),
    Operation(
        "post",
        "/api/orchestrator/agents",
        "agents.register_agent",
        "Register an HTTP or LLM agent",
        "agents",
        {201: ok(RegisteredAgent, "the agent, registered", headers=LOCATION)},
        body=AgentDefinition,
        errors=(409, *BODY, *STORE),
    ),
    Operation(
        "get",
        "/api/orchestrator/agents/<agent_id>",
        "agents.get_agent",
        "One agent, with its metrics over the last hour, day and all time",
        "agents",
        {200: ok(AgentDetail)},
        params=(AGENT_ID,),
        errors=(*BY_ID, *STORE),
    ),
    Operation(
        "get",
        "/api/orchestrator/agents/<agent_id>/metrics",
        "agents.agent_metrics",
        "How an agent did across sessions in a window (1h, 24h, all)",
        "agents",
        {200: ok(AgentMetrics)},
        params=(AGENT_ID,),
        query=MetricsQuery,
        errors=(*BY_ID, 422, *STORE),
    ),
    Operation(
        "patch",
        "/api/orchestrator/agents/<agent_id>",
        "agents.update_agent",
        "Change an agent's status, priority, maxLoad, name, description or metadata",
        "agents",
        {200: ok(RegisteredAgent)},
        params=(AGENT_ID,),
        body=AgentUpdate,
        errors=(*BY_ID, *BODY, *STORE),
    ),
    Operation(
        "delete",
        "/api/orchestrator/agents/<agent_id>",
        "agents.delete_agent",
        "Remove an agent from the registry",
        "agents",
        {200: ok(schemas.AgentDeleted)},
        params=(AGENT_ID,),
        errors=(*BY_ID, *STORE),
    ),
    Operation(
        "get",
        "/api/orchestrator/stats",
        "agents.stats",
        "Agent statistics (the spec's shape)",
        "agents",
        {200: ok(schemas.AgentStats)},
        errors=STORE,
    ),
    Operation(
        "get",
        "/api/orchestrator/autoscaler",
        "agents.autoscaler_status",
        "What `meowstik up --autoscale` last decided per hosted agent",
        "agents",
        {200: ok(schemas.AutoscalerStatus)},
        errors=STORE,
    ),
)
