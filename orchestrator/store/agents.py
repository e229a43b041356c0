"""The agent registry in Redis: one hash per agent plus index sets (all agents, agents per
capability), so listing and routing never scan keys."""

from __future__ import annotations

import json
from collections.abc import Iterable

import redis

from orchestrator.errors import AgentNotFoundError
from orchestrator.models import AgentDefinition
from orchestrator.statuses import AgentStatus
from orchestrator.store.keys import Keys
from orchestrator.store.scripts import text

ROUTABLE_STATUSES = frozenset({AgentStatus.ACTIVE})


class AgentRegistry:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def register(self, definition: AgentDefinition, *, worker: str, now_ms: int) -> None:
        """Register (or re-register) an agent hosted by ``worker`` as active.

        A worker registers its agents when it starts, when none of their steps can be running on
        it, so the load counter starts again from zero.
        """
        k = self._keys
        static = definition.model_dump(
            mode="json", by_alias=True, exclude={"status", "current_load", "max_load", "priority"}
        )
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(
            k.agent(definition.id),
            mapping={
                "definition": json.dumps(static, separators=(",", ":")),
                "status": AgentStatus.ACTIVE.value,
                "currentLoad": 0,
                "maxLoad": definition.max_load,
                "priority": definition.priority,
                "worker": worker,
                "registeredAt": now_ms,
                "heartbeatAt": now_ms,
            },
        )
        pipe.sadd(k.agents_index, definition.id)
        for capability in definition.capability_names:
            pipe.sadd(k.capability_agents(capability), definition.id)
        pipe.execute()

    def mark_offline(self, agent_ids: Iterable[str], *, worker: str) -> None:
        """Mark the worker's agents offline (clean shutdown), unless another worker took them."""
        for agent_id in agent_ids:
            key = self._keys.agent(agent_id)
            if text(self._client.hget(key, "worker") or b"") == worker:
                self._client.hset(
                    key, mapping={"status": AgentStatus.OFFLINE.value, "currentLoad": 0}
                )

    def heartbeat(self, agent_ids: Iterable[str], *, now_ms: int) -> None:
        pipe = self._client.pipeline(transaction=False)
        for agent_id in agent_ids:
            pipe.hset(self._keys.agent(agent_id), "heartbeatAt", now_ms)
        pipe.execute()

    def list(self) -> list[AgentDefinition]:
        """Every registered agent with its live status and load, sorted by id."""
        ids = sorted(text(i) for i in self._client.smembers(self._keys.agents_index))
        pipe = self._client.pipeline(transaction=False)
        for agent_id in ids:
            pipe.hgetall(self._keys.agent(agent_id))
        return [_decode(raw) for raw in pipe.execute() if raw]

    def get(self, agent_id: str) -> AgentDefinition:
        raw = self._client.hgetall(self._keys.agent(agent_id))
        if not raw:
            raise AgentNotFoundError(agent_id)
        return _decode(raw)

    def routable(self) -> list[AgentDefinition]:
        """Agents that may receive new work now (a draining agent only finishes what it has)."""
        return [agent for agent in self.list() if agent.status in ROUTABLE_STATUSES]


def _decode(raw: dict) -> AgentDefinition:
    fields = {text(key): text(value) for key, value in raw.items()}
    data = json.loads(fields["definition"])
    data.update(
        status=fields["status"],
        currentLoad=max(0, int(fields.get("currentLoad", 0))),
        maxLoad=int(fields["maxLoad"]),
        priority=int(fields["priority"]),
    )
    data["metadata"] = {**data.get("metadata", {}), "worker": fields.get("worker")}
    return AgentDefinition.model_validate(data)
