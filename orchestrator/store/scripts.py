"""Loads the Lua scripts once per client and turns their replies into typed results.

A script whose header says PRELUDE_MARKER gets the prelude prepended (orchestrator/store/
prelude.py: key-name functions rendered from Keys, then lua/_slots.lua) and takes the key prefix
as ARGV[1]. The other scripts are given every key they touch in KEYS and take no prefix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis
from redis.commands.core import Script

from orchestrator.store.prelude import prelude

SCRIPT_NAMES = (
    "add_run",
    "budget_gate",
    "budget_set",
    "claim_step",
    "complete_step",
    "fail_step",
    "requeue_step",
    "renew_lease",
    "route_steps",
    "release_slot",
    "reap_agent",
    "record_failure",
    "recover_step",
    "cancel_session",
    "await_input",
    "provide_input",
    "expand_step",
    "state_write",
    "workspace_write",
    "record_call",
    "append_delta",
    "retry_session",
    "release_idempotency",
    "fold_metrics",
)
PRELUDE_MARKER = "(prepended: prelude)"


def _source(name: str) -> str:
    """The source of lua/<name>.lua, after the prelude if its header asks for it."""
    text_ = resources.files("orchestrator.store").joinpath("lua", f"{name}.lua").read_text()
    if PRELUDE_MARKER in text_:
        return prelude() + "\n" + text_
    return text_


class Scripts:
    """The registered scripts of one Redis client (redis-py's Script: EVALSHA, EVAL fallback)."""

    def __init__(self, client: redis.Redis) -> None:
        self._by_name: dict[str, Script] = {
            name: client.register_script(_source(name)) for name in SCRIPT_NAMES
        }

    def __getitem__(self, name: str) -> Script:
        return self._by_name[name]

    @staticmethod
    def one(client: redis.Redis, name: str) -> Script:
        """Only the script ``name``, registered with ``client``."""
        return client.register_script(_source(name))


def hash_fields(values: Mapping[str, str | int | float]) -> Any:
    """``values`` as redis-py's ``hset(mapping=...)`` takes them: its annotations ask for a
    Mapping keyed by every encodable type, which a ``dict[str, ...]`` is not (invariance)."""
    return values


def text(value: Any) -> str:
    """Decode a Redis reply item (bytes or str) to str."""
    return value.decode() if isinstance(value, bytes) else str(value)


def pairs(flat: list[Any]) -> list[tuple[str, str]]:
    """[k1, v1, k2, v2] -> [(k1, v1), (k2, v2)], decoded."""
    return [(text(flat[i]), text(flat[i + 1])) for i in range(0, len(flat), 2)]


def triples(flat: list[Any]) -> list[tuple[str, str, str]]:
    return [(text(flat[i]), text(flat[i + 1]), text(flat[i + 2])) for i in range(0, len(flat), 3)]


@dataclass(frozen=True)
class Handoff:
    """A waiting step a released slot was given to: dispatch it to ``queue`` for ``agent_id``."""

    session_id: str
    step_id: str
    queue: str
    agent_id: str


def handoffs(flat: list[Any]) -> list[Handoff]:
    return [Handoff(*(text(v) for v in flat[i : i + 4])) for i in range(0, len(flat), 4)]


@dataclass(frozen=True)
class Claim:
    """Reply of claim_step. ``code`` is ok, missing, ended, finished, leased, not_ready or full."""

    code: str
    detail: str = ""
    attempt: int = 0
    step_json: str = ""
    goal: str = ""
    initial_context_json: str = "{}"
    state: list[tuple[str, str]] = field(default_factory=list)
    dependency_outputs: list[tuple[str, str]] = field(default_factory=list)
    max_attempts: int = 1
    agent_attempt: int = 0
    queue: str = ""
    answer_json: str | None = None
    subtask_ids: tuple[str, ...] = ()
    decompositions: int = 0

    @classmethod
    def parse(cls, reply: list[Any]) -> Claim:
        code = text(reply[0])
        if code != "ok":
            return cls(code=code, detail=text(reply[1]) if len(reply) > 1 else "")
        return cls(
            code=code,
            attempt=int(reply[1]),
            step_json=text(reply[2]),
            goal=text(reply[3]),
            initial_context_json=text(reply[4]),
            state=pairs(reply[5]),
            dependency_outputs=pairs(reply[6]),
            max_attempts=int(reply[7]),
            agent_attempt=int(reply[8]),
            queue=text(reply[9]),
            answer_json=text(reply[10]) if reply[10] is not None else None,
            subtask_ids=tuple(text(i) for i in reply[11]),
            decompositions=int(reply[12]),
        )


@dataclass(frozen=True)
class Transition:
    """Reply of complete_step, fail_step and requeue_step.

    ``code`` is ok, duplicate, stale, ended or missing. ``session_status`` is the status after the
    call, ``released`` the (step id, step record) pairs now queued, ``affected`` the ids the failure
    policy cancelled or skipped, ``failed_agents`` the agents a step failed on so far, and
    ``handed`` the waiting steps a freed slot was given to.
    """

    code: str
    session_status: str = ""
    released: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    affected: list[str] = field(default_factory=list)
    failed_agents: list[str] = field(default_factory=list)
    handed: list[Handoff] = field(default_factory=list)
    detail: str = ""
    ended: bool = False  # this call moved the session to a terminal status
    routed: list[tuple[str, str, str]] = field(default_factory=list)  # (step, agent, queue)
    parked: list[tuple[str, list[str]]] = field(default_factory=list)  # (step, candidates)

    @classmethod
    def parse_completion(cls, reply: list[Any]) -> Transition:
        code = text(reply[0])
        if code != "ok":
            return cls(code=code, detail=text(reply[1]) if len(reply) > 1 else "")
        released = [(step_id, json.loads(record)) for step_id, record in pairs(reply[2])]
        return cls(
            code=code,
            session_status=text(reply[1]),
            released=released,
            handed=handoffs(reply[3]),
            ended=bool(int(reply[4])),
            routed=triples(reply[5]),
            # an empty Lua table encodes as {}: no candidates
            parked=[(step_id, list(json.loads(ids) or [])) for step_id, ids in pairs(reply[6])],
        )

    @classmethod
    def parse_failure(cls, reply: list[Any]) -> Transition:
        code = text(reply[0])
        if code != "ok":
            return cls(code=code, detail=text(reply[1]) if len(reply) > 1 else "")
        return cls(
            code=code,
            session_status=text(reply[1]),
            affected=[text(i) for i in reply[2]],
            handed=handoffs(reply[3]),
            ended=bool(int(reply[4])),
        )

    @classmethod
    def parse_requeue(cls, reply: list[Any]) -> Transition:
        code = text(reply[0])
        if code != "ok":
            return cls(code=code, detail=text(reply[1]) if len(reply) > 1 else "")
        return cls(
            code=code,
            detail=text(reply[1]),
            failed_agents=[text(i) for i in reply[2]],
            handed=handoffs(reply[3]),
        )


@dataclass(frozen=True)
class Expansion:
    """Reply of expand_step: ``code`` is ok, stale, ended, conflict or missing; ``released``
    the (step id, record) pairs queued now, ``handed`` the waiting steps the freed slot went to."""

    code: str
    detail: str = ""
    released: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    handed: list[Handoff] = field(default_factory=list)

    @classmethod
    def parse(cls, reply: list[Any]) -> Expansion:
        code = text(reply[0])
        if code != "ok":
            return cls(code=code, detail=text(reply[1]) if len(reply) > 1 else "")
        released = [(step_id, json.loads(record)) for step_id, record in pairs(reply[1])]
        return cls(code=code, released=released, handed=handoffs(reply[2]))


@dataclass(frozen=True)
class Routing:
    """Reply of route_steps: ``reserved`` (step id, agent id, queue); ``waiting`` step ids;
    ``schedule_deadlines`` step id -> schedule deadline (ms, 0: none) of the waiting steps that
    had no candidate at all (waitingFor "agent")."""

    code: str
    reserved: list[tuple[str, str, str]] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    schedule_deadlines: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, reply: list[Any]) -> Routing:
        code = text(reply[0])
        if code != "ok":
            return cls(code=code)
        return cls(
            code=code,
            reserved=triples(reply[1]),
            waiting=[text(i) for i in reply[2]],
            schedule_deadlines={step: int(ms) for step, ms in pairs(reply[3])},
        )


@dataclass(frozen=True)
class Recovery:
    """Reply of recover_step: ``code`` is reroute, dead, early or gone."""

    code: str
    record: dict[str, Any] = field(default_factory=dict)
    handed: list[Handoff] = field(default_factory=list)
    deliveries: int = 0

    @classmethod
    def parse(cls, reply: list[Any]) -> Recovery:
        code = text(reply[0])
        if code == "reroute":
            return cls(code=code, record=json.loads(text(reply[1])), handed=handoffs(reply[2]))
        if code == "dead":
            return cls(code=code, deliveries=int(reply[1]))
        return cls(code=code)


@dataclass(frozen=True)
class Retried:
    """Reply of retry_session: ``code`` is ok, missing or status (then ``detail`` is the
    session's status, which cannot be retried)."""

    code: str
    round: int = 0
    queued: list[str] = field(default_factory=list)
    reset: list[str] = field(default_factory=list)
    detail: str = ""

    @classmethod
    def parse(cls, reply: list[Any]) -> Retried:
        code = text(reply[0])
        if code != "ok":
            return cls(code=code, detail=text(reply[1]) if len(reply) > 1 else "")
        return cls(
            code=code,
            round=int(reply[1]),
            queued=[text(i) for i in reply[2]],
            reset=[text(i) for i in reply[3]],
        )


@dataclass(frozen=True)
class Cancellation:
    """Reply of cancel_session: ``code`` is ok, already, finished or missing."""

    code: str
    cancelled: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    handed: list[Handoff] = field(default_factory=list)
    detail: str = ""

    @classmethod
    def parse(cls, reply: list[Any]) -> Cancellation:
        code = text(reply[0])
        if code != "ok":
            return cls(code=code, detail=text(reply[1]) if len(reply) > 1 else "")
        return cls(
            code=code,
            cancelled=[text(i) for i in reply[1]],
            running=[text(i) for i in reply[2]],
            handed=handoffs(reply[3]),
        )
