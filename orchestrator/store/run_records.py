"""What a worker reads about a step run outside its claim: the ``timeoutS`` values that bound it
(read when the message is handed to a pool process, before the claim) and the record of a
running step whose process is gone (to record its timeout against the run's token).
``SessionStore.runs`` holds one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.scripts import text


@dataclass(frozen=True)
class RunningStep:
    """A step's runtime record with what recording its run's failure needs."""

    status: str
    token: str | None
    queue: str
    attempts: int
    agent_attempts: int
    max_attempts: int
    goal: str
    step_json: str


@translates_redis_errors
class RunRecords:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def timeouts(self, sid: str, step_id: str, agent_id: str) -> tuple[float | None, float | None]:
        """The step's and the agent's ``timeoutS`` (None where unset or unknown), in one round
        trip: the step's definition in the plan and the agent's in the registry."""
        pipe = self._client.pipeline(transaction=False)
        pipe.hget(self._keys.plan(sid), step_id)
        pipe.hget(self._keys.agent(agent_id), "definition")
        step_raw, agent_raw = pipe.execute()
        return _timeout_of(step_raw), _timeout_of(agent_raw)

    def running(self, sid: str, step_id: str) -> RunningStep | None:
        """The step's record, definition, goal and attempt limit in one round trip; None when
        the session or step is gone."""
        k = self._keys
        pipe = self._client.pipeline(transaction=False)
        pipe.hget(k.steps(sid), step_id)
        pipe.hget(k.plan(sid), step_id)
        pipe.hmget(k.session(sid), ["goal", "maxAttempts"])
        record_raw, step_raw, (goal, max_attempts) = pipe.execute()
        if record_raw is None or step_raw is None or max_attempts is None:
            return None
        record = json.loads(record_raw)
        token = record.get("token")
        return RunningStep(
            status=str(record.get("status")),
            token=str(token) if token else None,
            queue=str(record.get("queue") or ""),
            attempts=int(record.get("attempts") or 0),
            agent_attempts=int(record.get("agentAttempts") or 0),
            max_attempts=int(text(max_attempts)),
            goal=text(goal) if goal is not None else "",
            step_json=text(step_raw),
        )


def _timeout_of(raw: Any) -> float | None:
    """``timeoutS`` of a stored definition (step or agent), if it is a positive number."""
    if raw is None:
        return None
    try:
        value = json.loads(raw).get("timeoutS")
    except (ValueError, AttributeError):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)
