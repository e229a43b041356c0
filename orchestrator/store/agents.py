"""The agent registry in Redis: one hash per agent plus index sets (all agents, agents per
capability, remote agents), so listing and routing never scan keys.

An agent's load is its slots sorted set (see lua/_slots.lua); its liveness is ``aliveUntil``,
pushed forward by the heartbeats of the workers that execute it. The stored ``status`` is what an
operator set (active, inactive, draining); while no worker is alive the status shown is
``offline``, or ``unhosted`` when nothing ever ran it or nothing alive could
(``core/availability.py``). A worker hosting an id registered over the API takes it over: its
Python definition replaces the record.
"""

from __future__ import annotations

import builtins
import json
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from orchestrator.core.availability import shown_status, unhosted_reason
from orchestrator.core.errors import AgentExistsError, AgentNotFoundError
from orchestrator.core.ids import REMOTE_EXECUTOR_QUEUE, agent_queue
from orchestrator.core.logentry import iso_from_ms
from orchestrator.core.models import AgentDefinition, AgentExecutor, AgentUpdate, RegisteredAgent
from orchestrator.core.statuses import AgentStatus
from orchestrator.store.agent_metrics import AgentMetricsStore
from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.scripts import Scripts, hash_fields, text

_KEEP_ON_REREGISTER = frozenset({AgentStatus.INACTIVE.value, AgentStatus.DRAINING.value})


@translates_redis_errors
class AgentRegistry:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._scripts = Scripts(client)
        self.metrics = AgentMetricsStore(client, keys)

    @property
    def keys(self) -> Keys:
        return self._keys

    def register(
        self, definition: AgentDefinition, *, worker: str | None, now_ms: int, alive_ms: int
    ) -> None:
        """Register or refresh an agent. An operator's inactive/draining status survives a
        worker restart; load is never reset here (slots expire by themselves).

        Over an agent registered another way (an HTTP or LLM agent of the same id, or an older
        definition) this definition wins whole: capabilities it no longer has leave their
        capability sets, and a Python agent leaves the remote agents' index."""
        k, agent_id = self._keys, definition.id
        previous, previous_caps = self._client.hmget(k.agent(agent_id), ["status", "capabilities"])
        status = definition.status.value
        if previous is not None and text(previous) in _KEEP_ON_REREGISTER:
            status = text(previous)
        fields = _fields(definition, status, now_ms)
        if worker is not None:
            fields.update(worker=worker, heartbeatAt=now_ms, aliveUntil=now_ms + alive_ms)
        pipe = self._client.pipeline(transaction=True)
        for capability in set(json.loads(previous_caps or "[]")) - definition.capability_names:
            pipe.srem(k.capability_agents(capability), agent_id)
        if definition.executor == AgentExecutor.PYTHON:
            pipe.srem(k.remote_agents_index, agent_id)
        self._write(pipe, definition, fields)
        pipe.execute()

    def create_remote(self, definition: AgentDefinition, *, now_ms: int) -> None:
        """Register a new HTTP or LLM agent; it is alive while a remote-executor worker that can
        run it is (for an LLM agent, one with an LLM configured), else unhosted.

        Create-only: the check that the id is free and the writes are one WATCH/MULTI
        transaction, so of concurrent registrations of one id exactly one succeeds.

        Raises:
            AgentExistsError: an agent with this id is registered already; nothing changed.
        """
        k = self._keys
        key = k.agent(definition.id)
        fields = _fields(definition, definition.status.value, now_ms)

        def create(pipe: redis.client.Pipeline) -> None:
            if pipe.exists(key):  # watched: a registration landing after this aborts the write
                raise AgentExistsError(definition.id)
            alive_until = pipe.get(
                k.llm_executor_alive
                if definition.executor == AgentExecutor.LLM
                else k.remote_executor_alive
            )
            if alive_until is not None:
                fields["aliveUntil"] = text(alive_until)
            pipe.multi()
            self._write(pipe, definition, fields)

        self._client.transaction(create, key)

    def heartbeat(
        self,
        agent_ids: Iterable[str],
        *,
        worker: str,
        now_ms: int,
        alive_ms: int,
        remote: bool = False,
        llm: bool = False,
    ) -> None:
        """The worker executing these agents is alive and consuming. A ``remote`` worker runs
        HTTP agents, and LLM agents only with an ``llm`` configured (then ``agent_ids`` holds
        them: see ``remote_agent_ids``)."""
        pipe = self._client.pipeline(transaction=False)
        if remote:
            pipe.set(self._keys.remote_executor_alive, now_ms + alive_ms, px=alive_ms)
        if remote and llm:
            pipe.set(self._keys.llm_executor_alive, now_ms + alive_ms, px=alive_ms)
        for agent_id in agent_ids:
            key = self._keys.agent(agent_id)
            pipe.hset(key, mapping={"heartbeatAt": now_ms, "aliveUntil": now_ms + alive_ms})
            pipe.hset(key, "worker", worker)
        pipe.execute()

    def mark_offline(self, agent_ids: Iterable[str], *, worker: str) -> None:
        """A clean shutdown: the worker's agents are offline at once, unless another worker
        executes them now."""
        for agent_id in agent_ids:
            key = self._keys.agent(agent_id)
            if text(self._client.hget(key, "worker") or b"") == worker:
                self._client.hset(key, "aliveUntil", 0)

    def remote_agent_ids(self, *, llm: bool = True) -> list[str]:
        """The HTTP and LLM agents a remote-executor worker runs; without ``llm`` (the worker
        has no LLM configured) only the HTTP agents: LLM agents stay unhosted."""
        ids = sorted(text(i) for i in self._client.smembers(self._keys.remote_agents_index))
        if llm or not ids:
            return ids
        pipe = self._client.pipeline(transaction=False)
        for agent_id in ids:
            pipe.hget(self._keys.agent(agent_id), "executor")
        executors = pipe.execute()
        return [
            agent_id
            for agent_id, executor in zip(ids, executors, strict=True)
            if executor is not None and text(executor) != AgentExecutor.LLM.value
        ]

    def list(self, now_ms: int) -> list[RegisteredAgent]:
        """Every registered agent with its live status and load, sorted by id."""
        ids = sorted(text(i) for i in self._client.smembers(self._keys.agents_index))
        return self._load(ids, now_ms)

    def get(self, agent_id: str, now_ms: int) -> RegisteredAgent:
        found = self._load([agent_id], now_ms)
        if not found:
            raise AgentNotFoundError(agent_id)
        return found[0]

    def candidates(
        self, capabilities: Sequence[str], now_ms: int
    ) -> builtins.list[RegisteredAgent]:
        """Agents that have every capability (any status), with live status and load."""
        keys = [self._keys.capability_agents(c) for c in capabilities]
        ids = sorted(text(i) for i in self._client.sinter(keys))
        return self._load(ids, now_ms)

    def update(self, agent_id: str, change: AgentUpdate, now_ms: int) -> RegisteredAgent:
        current = self.get(agent_id, now_ms)
        changed = change.model_dump(exclude_none=True)
        if "timeout_s" in change.model_fields_set and change.timeout_s is None:
            changed["timeout_s"] = None  # an explicit null removes the agent's own time limit
        definition = current.model_copy(update=changed)
        fields: dict[str, str | int] = {
            "definition": json.dumps(_static(definition), separators=(",", ":"))
        }
        if change.status is not None:
            fields["status"] = change.status.value
        if change.priority is not None:
            fields["priority"] = change.priority
        if change.max_load is not None:
            fields["maxLoad"] = change.max_load
        self._client.hset(self._keys.agent(agent_id), mapping=hash_fields(fields))
        return self.get(agent_id, now_ms)

    def delete(self, agent_id: str, now_ms: int) -> RegisteredAgent:
        """Deregister. Running steps finish; their slot release is harmless afterwards."""
        current = self.get(agent_id, now_ms)
        k = self._keys
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(k.agent(agent_id), k.agent_failures(agent_id))
        pipe.srem(k.agents_index, agent_id)
        pipe.srem(k.remote_agents_index, agent_id)
        for capability in current.capability_names:
            pipe.srem(k.capability_agents(capability), agent_id)
        pipe.execute()
        return current

    def record_failure(
        self, agent_id: str, *, now_ms: int, window_ms: int, threshold: int, cooldown_ms: int
    ) -> int:
        """Count a failure; returns the time (ms) the circuit stays open until, or 0."""
        keys = [self._keys.agent(agent_id), self._keys.agent_failures(agent_id)]
        member = f"{now_ms}-{secrets.token_hex(4)}"
        reply = self._scripts["record_failure"](
            keys=keys, args=[now_ms, window_ms, threshold, cooldown_ms, member]
        )
        return int(reply[1])

    def _write(self, pipe: Any, definition: AgentDefinition, fields: dict[str, Any]) -> None:
        """Queue on ``pipe`` the agent's hash and its index entries."""
        k, agent_id = self._keys, definition.id
        pipe.hset(k.agent(agent_id), mapping=hash_fields(fields))
        pipe.sadd(k.agents_index, agent_id)
        if definition.executor != AgentExecutor.PYTHON:
            pipe.sadd(k.remote_agents_index, agent_id)
        for capability in definition.capability_names:
            pipe.sadd(k.capability_agents(capability), agent_id)

    def _load(self, ids: Sequence[str], now_ms: int) -> builtins.list[RegisteredAgent]:
        pipe = self._client.pipeline(transaction=False)
        for agent_id in ids:
            pipe.hgetall(self._keys.agent(agent_id))
            pipe.zcount(self._keys.agent_slots(agent_id), now_ms, "+inf")
        replies = pipe.execute()
        agents = []
        for index in range(0, len(replies), 2):
            if replies[index]:
                agents.append(_decode(replies[index], int(replies[index + 1]), now_ms))
        return agents

    def autoscaler_record(self) -> Any:
        """What `meowstik up --autoscale` last wrote (cli/autoscale.py), decoded from JSON; None
        when no autoscaler has written one recently (it expires) or it is not JSON."""
        raw = self._client.get(self._keys.autoscaler)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None


def _fields(definition: AgentDefinition, status: str, now_ms: int) -> dict[str, Any]:
    """The agent hash's fields from its definition (liveness fields are added by the caller)."""
    remote = definition.executor != AgentExecutor.PYTHON
    return {
        "definition": json.dumps(_static(definition), separators=(",", ":")),
        "status": status,
        "maxLoad": definition.max_load,
        "priority": definition.priority,
        "type": definition.type,
        "executor": definition.executor.value,
        "capabilities": json.dumps(sorted(definition.capability_names)),
        "queue": REMOTE_EXECUTOR_QUEUE if remote else agent_queue(definition.id),
        "registeredAt": now_ms,
    }


def _static(definition: AgentDefinition) -> dict[str, Any]:
    return definition.model_dump(
        mode="json",
        by_alias=True,
        include=set(AgentDefinition.model_fields)
        - {"status", "current_load", "max_load", "priority"},
    )


def _decode(raw: dict, live_load: int, now_ms: int) -> RegisteredAgent:
    fields = {text(key): text(value) for key, value in raw.items()}
    data = json.loads(fields["definition"])
    alive = int(float(fields.get("aliveUntil", 0))) >= now_ms
    executor = AgentExecutor(fields.get("executor") or AgentExecutor.PYTHON.value)
    status = shown_status(
        fields["status"], alive=alive, ever_hosted="aliveUntil" in fields, executor=executor
    )
    open_until = int(float(fields.get("circuitOpenUntil", 0)))
    heartbeat = fields.get("heartbeatAt")
    data.update(
        status=status.value,
        waitingFor=unhosted_reason(data["id"], executor)
        if status == AgentStatus.UNHOSTED
        else None,
        currentLoad=live_load,
        maxLoad=int(fields["maxLoad"]),
        priority=int(fields["priority"]),
        worker=fields.get("worker"),
        queue=fields.get("queue"),
        lastHeartbeat=iso_from_ms(int(float(heartbeat))) if heartbeat else None,
        circuit={"state": "open", "openUntil": iso_from_ms(open_until)}
        if open_until > now_ms
        else {"state": "closed"},
    )
    return RegisteredAgent.model_validate(data)
