"""The record of a step's model calls and tool calls (``Keys.turns``), which makes tool loops
durable: each model reply and each tool result is written here as it happens, before anything
uses it, and a step that runs again (retried, redelivered after its worker died, resumed after
operator input) reads them back instead of calling again.

Entries are per (step, agent): a fallback agent has its own prompt and model, so it starts its
own record. Within one, ``c<n>`` is the n-th model call of the step, ``c<n>|t<i>`` the result of
its i-th tool call, ``c<n>|t<i>|started`` says a non-idempotent tool began (so a run that finds
it without a result knows the effect may have happened) and ``c<n>|t<i>|asked`` that the call
asked the operator. A recorded entry is never replaced (HSETNX): if two runs ever overlap, the
first to record wins and both follow the same history. The hash is session-owned: retention
removes it with the session.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from orchestrator.core.chat import Usage
from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.scripts import Scripts, text

MS_PER_HOUR = 3_600_000
DEFAULT_HISTORY_DAYS = 90


def hour_expires_at(hour: int, history_days: int) -> int:
    """When an hour's cost counters expire (unix seconds): ``history_days`` after the hour."""
    return (hour + 1) * 3600 + history_days * 86_400


@translates_redis_errors
class TurnJournal:
    """The records of every step's tool loop over one client."""

    def __init__(
        self, client: redis.Redis, keys: Keys, *, history_days: int = DEFAULT_HISTORY_DAYS
    ) -> None:
        self._client, self._keys = client, keys
        self._scripts = Scripts(client)
        self.history_days = history_days

    def bound(self, session_id: str, step_id: str, agent_id: str) -> StepJournal:
        """The record of one step as run by one agent."""
        return StepJournal(self, session_id, step_id, agent_id)

    def get(self, session_id: str, field: str) -> dict[str, Any] | None:
        raw = self._client.hget(self._keys.turns(session_id), field)
        return None if raw is None else json.loads(text(raw))

    def record(self, session_id: str, field: str, document: dict[str, Any]) -> dict[str, Any]:
        """Write ``document`` unless the field holds one already; returns the one that holds."""
        key = self._keys.turns(session_id)
        encoded = json.dumps(document, separators=(",", ":"), allow_nan=False)
        pipe = self._client.pipeline(transaction=True)
        pipe.hsetnx(key, field, encoded)
        pipe.hget(key, field)
        _, raw = pipe.execute()
        return json.loads(text(raw))

    def record_call(
        self,
        session_id: str,
        field: str,
        document: dict[str, Any],
        *,
        step_id: str,
        agent_id: str,
        model: str,
        usage: Usage | None,
        cost_pico: int | None,
        now_ms: int,
    ) -> dict[str, Any]:
        """Record a model call unless the field holds one already, and count its tokens and
        cost with the session, the step, the agent, the model, the user and the hour only if
        this write recorded it (record_call.lua); returns the record that holds."""
        k = self._keys
        hour = now_ms // MS_PER_HOUR
        raw = self._scripts["record_call"](
            keys=[
                k.turns(session_id),
                k.costs(session_id),
                k.cost_totals,
                k.session(session_id),
                k.cost_hour(hour),
                k.budget_holds(session_id),
            ],
            args=[
                field,
                json.dumps(document, separators=(",", ":"), allow_nan=False),
                step_id,
                agent_id,
                model.replace("|", "/"),  # "|" separates the counters' names
                "" if usage is None else usage.prompt_tokens,
                "" if usage is None else usage.completion_tokens,
                "" if cost_pico is None else cost_pico,
                hour_expires_at(hour, self.history_days),
            ],
        )
        return json.loads(text(raw))

    def mark(self, session_id: str, field: str, document: dict[str, Any]) -> None:
        key = self._keys.turns(session_id)
        self._client.hset(key, field, json.dumps(document, separators=(",", ":")))

    def forget(self, session_id: str, field: str) -> None:
        self._client.hdel(self._keys.turns(session_id), field)

    def step_entries(self, session_id: str, step_id: str) -> dict[str, dict[str, Any]]:
        """Every entry of the step (all its agents), by field."""
        key = self._keys.turns(session_id)
        found: dict[str, dict[str, Any]] = {}
        for field, raw in self._client.hscan_iter(key, match=f"{step_id}|*", count=500):
            found[text(field)] = json.loads(text(raw))
        return found


class StepJournal:
    """One step's record as one agent writes it; fields are relative (``c1``, ``c1|t0``)."""

    def __init__(self, journal: TurnJournal, session_id: str, step_id: str, agent_id: str) -> None:
        self._journal, self._session_id = journal, session_id
        self._step_id, self._agent_id = step_id, agent_id
        self._prefix = f"{step_id}|{agent_id}|"

    def field(self, name: str) -> str:
        """The session-wide field of ``name`` ("<step>|<agent>|c1"): also the call's budget
        hold."""
        return self._prefix + name

    def get(self, name: str) -> dict[str, Any] | None:
        return self._journal.get(self._session_id, self._prefix + name)

    def record(self, name: str, document: dict[str, Any]) -> dict[str, Any]:
        return self._journal.record(self._session_id, self._prefix + name, document)

    def record_call(
        self,
        name: str,
        document: dict[str, Any],
        *,
        model: str,
        usage: Usage | None,
        cost_pico: int | None,
        now_ms: int,
    ) -> dict[str, Any]:
        return self._journal.record_call(
            self._session_id,
            self._prefix + name,
            document,
            step_id=self._step_id,
            agent_id=self._agent_id,
            model=model,
            usage=usage,
            cost_pico=cost_pico,
            now_ms=now_ms,
        )

    def mark(self, name: str, document: dict[str, Any]) -> None:
        self._journal.mark(self._session_id, self._prefix + name, document)

    def forget(self, name: str) -> None:
        self._journal.forget(self._session_id, self._prefix + name)
