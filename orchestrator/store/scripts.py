"""Loads the Lua scripts once per client and turns their replies into typed results."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis

SCRIPT_NAMES = ("claim_step", "complete_step", "fail_step", "requeue_step", "renew_lease")


def _source(name: str) -> str:
    return resources.files("orchestrator.store").joinpath("lua", f"{name}.lua").read_text()


class Scripts:
    """The registered scripts of one Redis client (redis-py's Script: EVALSHA, EVAL fallback)."""

    def __init__(self, client: redis.Redis) -> None:
        for name in SCRIPT_NAMES:
            setattr(self, name, client.register_script(_source(name)))


def text(value: Any) -> str:
    """Decode a Redis reply item (bytes or str) to str."""
    return value.decode() if isinstance(value, bytes) else str(value)


def pairs(flat: list[Any]) -> list[tuple[str, str]]:
    """[k1, v1, k2, v2] -> [(k1, v1), (k2, v2)], decoded."""
    return [(text(flat[i]), text(flat[i + 1])) for i in range(0, len(flat), 2)]


@dataclass(frozen=True)
class Claim:
    """Reply of claim_step. ``code`` is ok, missing, ended, finished, leased or not_ready."""

    code: str
    detail: str = ""
    attempt: int = 0
    step_json: str = ""
    goal: str = ""
    initial_context_json: str = "{}"
    state: list[tuple[str, str]] = field(default_factory=list)
    dependency_outputs: list[tuple[str, str]] = field(default_factory=list)
    max_attempts: int = 1

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
        )


@dataclass(frozen=True)
class Transition:
    """Reply of complete_step, fail_step and requeue_step.

    ``code`` is ok, duplicate, stale, ended or missing. ``session_status`` is the status after the
    call, ``released`` the (step id, step record) pairs now queued, ``affected`` the ids the failure
    policy cancelled or skipped.
    """

    code: str
    session_status: str = ""
    released: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    affected: list[str] = field(default_factory=list)
    detail: str = ""

    @classmethod
    def parse_completion(cls, reply: list[Any]) -> Transition:
        code = text(reply[0])
        if code != "ok":
            return cls(code=code, detail=text(reply[1]) if len(reply) > 1 else "")
        released = [(step_id, json.loads(record)) for step_id, record in pairs(reply[2])]
        return cls(code=code, session_status=text(reply[1]), released=released)

    @classmethod
    def parse_failure(cls, reply: list[Any]) -> Transition:
        code = text(reply[0])
        if code != "ok":
            return cls(code=code, detail=text(reply[1]) if len(reply) > 1 else "")
        return cls(code=code, session_status=text(reply[1]), affected=[text(i) for i in reply[2]])

    @classmethod
    def parse_requeue(cls, reply: list[Any]) -> Transition:
        code = text(reply[0])
        return cls(code=code, detail=text(reply[1]) if len(reply) > 1 else "")
