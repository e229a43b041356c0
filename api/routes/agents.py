"""/api/orchestrator/agents and /stats: the registry over REST."""

from __future__ import annotations

import json
import time
from collections import Counter

from flask import Blueprint, current_app, jsonify

from api.body import json_body
from api.errors import ApiError
from orchestrator.core.graph import check_metadata
from orchestrator.core.models import AgentDefinition, AgentUpdate
from orchestrator.core.registration import AgentExistsError, resolve_executor
from orchestrator.core.statuses import AgentStatus

blueprint = Blueprint("agents", __name__, url_prefix="/api/orchestrator")


def services():
    return current_app.extensions["meowstik"]


def now_ms() -> int:
    return int(time.time() * 1000)


@blueprint.get("/agents")
def list_agents():
    agents = [agent.to_json_dict() for agent in services().registry.list(now_ms())]
    return jsonify({"agents": agents, "count": len(agents)})


@blueprint.post("/agents")
def register_agent():
    """Register an HTTP or LLM agent (python agents register from their workers)."""
    body = json_body()
    definition = resolve_executor(body, AgentDefinition.model_validate(body), services().settings)
    registry = services().registry
    if registry.exists(definition.id):
        raise AgentExistsError(definition.id)
    registry.register_remote(definition, now_ms=now_ms())
    services().engine.router.offer_capacity(definition.id)
    response = jsonify(registry.get(definition.id, now_ms()).to_json_dict())
    response.status_code = 201
    response.headers["Location"] = f"/api/orchestrator/agents/{definition.id}"
    return response


@blueprint.get("/agents/<agent_id>")
def get_agent(agent_id: str):
    return jsonify(services().registry.get(agent_id, now_ms()).to_json_dict())


@blueprint.patch("/agents/<agent_id>")
def update_agent(agent_id: str):
    """Change status (active, inactive, draining), priority, maxLoad, name, description, metadata.
    Draining finishes current work and takes no new."""
    change = AgentUpdate.model_validate(json_body())
    if change.metadata is not None:
        check_metadata(change.metadata, services().settings, "body.metadata")
    if change.status == AgentStatus.OFFLINE:
        raise ApiError(
            422,
            "validation_error",
            "status 'offline' is derived from heartbeats and cannot be set",
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
    updated = services().registry.update(agent_id, change, now_ms())
    services().engine.router.offer_capacity(agent_id)  # more room, or active again
    return jsonify(updated.to_json_dict())


@blueprint.delete("/agents/<agent_id>")
def delete_agent(agent_id: str):
    removed = services().registry.delete(agent_id, now_ms())
    return jsonify({"deleted": True, "agent": removed.to_json_dict()})


@blueprint.get("/stats")
def stats():
    """The spec's statistics, computed from the same records GET /agents shows."""
    agents = services().registry.list(now_ms())
    active = [a for a in agents if a.status == AgentStatus.ACTIVE]
    return jsonify(
        {
            "totalAgents": len(agents),
            "activeAgents": len(active),
            "busyAgents": sum(1 for a in agents if a.current_load > 0),
            "totalCapacity": sum(a.max_load for a in active),
            "usedCapacity": sum(a.current_load for a in agents),
            "agentsByType": dict(Counter(a.type for a in agents)),
        }
    )


@blueprint.get("/autoscaler")
def autoscaler_status():
    """What `meowstik up --autoscale` last decided, per hosted agent; ``enabled`` is false when
    no autoscaler has looked recently (its record expires a few intervals after it stops)."""
    return jsonify(read_autoscaler(services()))


def read_autoscaler(found) -> dict:
    raw = found.client.get(found.registry.keys.autoscaler)
    if raw is None:
        return {"enabled": False, "agents": []}
    try:
        record = json.loads(raw)
    except ValueError:
        return {"enabled": False, "agents": []}
    return {"enabled": True, **record}
