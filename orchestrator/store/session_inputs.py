"""Operator input on the session store: park a step until a person answers, record the answer,
and find input deadlines that passed. ``SessionStore.inputs`` holds one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis

from orchestrator.core.ids import slot_member
from orchestrator.core.logentry import LogEntry
from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.runner import ScriptRunner
from orchestrator.store.scripts import Handoff, handoffs, text


@translates_redis_errors
class SessionInputs:
    def __init__(self, client: redis.Redis, keys: Keys, run: ScriptRunner) -> None:
        self._client = client
        self._keys = keys
        self._run = run

    def await_input(
        self,
        sid: str,
        step_id: str,
        *,
        token: str,
        now_ms: int,
        reserve_ms: int,
        request_json: str,
        deadline_ms: int,
        logs: Sequence[LogEntry] = (),
    ) -> tuple[str, list[Handoff]]:
        """Park a running step until an operator answers. Returns (code, handed)."""
        k = self._keys
        keys = [k.session(sid), k.steps(sid), k.input_requests(sid)]
        args = [k.prefix, sid, step_id, token, now_ms, reserve_ms, request_json, deadline_ms]
        reply = self._run("await_input", keys, args, logs, now_ms)
        code = text(reply[0])
        return code, handoffs(reply[1]) if code == "ok" else []

    def input_request(self, sid: str, step_id: str) -> dict[str, Any] | None:
        raw = self._client.hget(self._keys.input_requests(sid), step_id)
        return json.loads(raw) if raw else None

    def provide_input(
        self,
        sid: str,
        step_id: str,
        *,
        now_ms: int,
        answer_json: str,
        reserve_ms: int,
        by: str,
        logs: Sequence[LogEntry] = (),
    ) -> tuple[str, dict[str, Any] | str]:
        """Record an answer and queue the step again. Returns (code, step record or detail)."""
        k = self._keys
        keys = [k.session(sid), k.steps(sid), k.input_requests(sid), k.answers(sid)]
        args = [k.prefix, sid, step_id, now_ms, answer_json, reserve_ms, by]
        reply = self._run("provide_input", keys, args, logs, now_ms)
        code = text(reply[0])
        return code, json.loads(text(reply[1])) if code == "ok" else text(reply[1])

    def due_input_deadlines(self, now_ms: int, limit: int = 100) -> list[tuple[str, str]]:
        members = self._client.zrangebyscore(self._keys.input_deadlines, "-inf", now_ms, 0, limit)
        return [_pair(text(m)) for m in members]

    def clear_input_deadline(self, sid: str, step_id: str) -> None:
        self._client.zrem(self._keys.input_deadlines, slot_member(sid, step_id))


def _pair(member: str) -> tuple[str, str]:
    session_id, _, step_id = member.partition("|")
    return session_id, step_id
