"""A/B experiments in Redis: their definitions, which one every session joins, and the sessions
assigned to each, read back with what each session did for the report."""

from __future__ import annotations

import redis

from orchestrator.core.experiments import Experiment, SessionOutcome
from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.scripts import text

ENDED = ("completed", "failed", "cancelled")


@translates_redis_errors
class ExperimentStore:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client, self._keys = client, keys

    def create(self, experiment: Experiment, now_ms: int) -> bool:
        """Store a new experiment; False when the name is taken. A match-all experiment becomes
        the one every session joins (the caller checked none runs)."""
        k = self._keys
        encoded = experiment.model_dump_json(by_alias=True)
        if not self._client.set(k.experiment(experiment.name), encoded, nx=True):
            return False
        pipe = self._client.pipeline(transaction=False)
        pipe.zadd(k.experiments, {experiment.name: now_ms})
        if experiment.match == "all":
            pipe.set(k.experiment_for_all, experiment.name)
        pipe.execute()
        return True

    def get(self, name: str) -> Experiment | None:
        raw = self._client.get(self._keys.experiment(name))
        return None if raw is None else Experiment.model_validate_json(raw)

    def save(self, experiment: Experiment) -> None:
        self._client.set(
            self._keys.experiment(experiment.name), experiment.model_dump_json(by_alias=True)
        )
        if experiment.status == "stopped":
            current = self._client.get(self._keys.experiment_for_all)
            if current is not None and text(current) == experiment.name:
                self._client.delete(self._keys.experiment_for_all)

    def for_all(self) -> Experiment | None:
        name = self._client.get(self._keys.experiment_for_all)
        return None if name is None else self.get(text(name))

    def names(self) -> list[str]:
        return [text(n) for n in self._client.zrange(self._keys.experiments, 0, -1)]

    def outcomes(self, name: str) -> tuple[list[SessionOutcome], int]:
        """What every assigned session did (status, seconds from start to end, dollars spent),
        and how many assigned sessions are gone (retention removed them)."""
        k = self._keys
        members = [text(m) for m in self._client.lrange(k.experiment_sessions(name), 0, -1)]
        pipe = self._client.pipeline(transaction=False)
        pairs = [member.split("|", 1) for member in members]
        for _variant, sid in pairs:
            pipe.hmget(k.session(sid), "status", "startTime", "endTime")
            pipe.hget(k.costs(sid), "t|pico")
        replies = pipe.execute()
        outcomes, expired = [], 0
        for index, (variant, _sid) in enumerate(pairs):
            (status, start, end), pico = replies[2 * index], replies[2 * index + 1]
            if status is None:
                expired += 1
                continue
            status = text(status)
            duration = None
            if status in ENDED and start is not None and end is not None:
                duration = (int(end) - int(start)) / 1000
            outcomes.append(
                SessionOutcome(
                    variant=variant,
                    status=status,
                    duration_s=duration,
                    cost_usd=int(pico) / 10**12 if pico is not None else 0.0,
                )
            )
        return outcomes, expired
