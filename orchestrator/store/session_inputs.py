"""Operator input on the session store: park a step until a person answers, record the answer,
and find input deadlines that passed. Mixed into SessionStore (which provides the client, the
keys and ``_run``, the pipelined script call)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from orchestrator.core.ids import slot_member
from orchestrator.core.logentry import LogEntry
from orchestrator.store.scripts import Handoff, handoffs, text


class SessionInputs:
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
        return [tuple(text(m).split("|", 1)) for m in members]  # type: ignore[misc]

    def clear_input_deadline(self, sid: str, step_id: str) -> None:
        self._client.zrem(self._keys.input_deadlines, slot_member(sid, step_id))
