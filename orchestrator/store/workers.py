"""Worker processes as the API and Flower-style inspection see them: each worker's heartbeat
writes what it is (queues, agents, pid, concurrency) and until when it counts as alive. Offline
workers are listed as such, then forgotten after FORGET_OFFLINE_MS (Flower never purged them)."""

from __future__ import annotations

import json
from typing import Any

import redis

from orchestrator.core.logentry import iso_from_ms
from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.scripts import text

FORGET_OFFLINE_MS = 24 * 3600 * 1000


@translates_redis_errors
class WorkerRegistry:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def heartbeat(self, name: str, info: dict[str, Any], *, now_ms: int, alive_ms: int) -> None:
        """The worker ``name`` is alive and consuming; ``info`` describes it."""
        pipe = self._client.pipeline(transaction=False)
        pipe.hset(
            self._keys.worker(name),
            mapping={
                "info": json.dumps(info, separators=(",", ":")),
                "lastHeartbeat": now_ms,
                "aliveUntil": now_ms + alive_ms,
            },
        )
        pipe.sadd(self._keys.workers_index, name)
        pipe.execute()

    def mark_offline(self, name: str, *, now_ms: int) -> None:
        """A clean shutdown: offline at once."""
        self._client.hset(self._keys.worker(name), "aliveUntil", now_ms)

    def alive_until(self, name: str) -> int | None:
        """Until when (ms) the worker ``name`` counts as alive, from its last heartbeat; None if
        it never heartbeated (or was forgotten). One HGET: cheap enough for a healthcheck."""
        raw = self._client.hget(self._keys.worker(name), "aliveUntil")
        return None if raw is None else int(raw)

    def list(self, now_ms: int) -> list[dict[str, Any]]:
        """Every known worker, sorted by name: its info plus ``status`` (online/offline) and
        ``lastHeartbeat``. Workers offline for longer than FORGET_OFFLINE_MS are dropped."""
        names = sorted(text(n) for n in self._client.smembers(self._keys.workers_index))
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self._keys.worker(name))
        workers: list[dict[str, Any]] = []
        for name, raw in zip(names, pipe.execute(), strict=True):
            fields = {text(k): text(v) for k, v in raw.items()}
            alive_until = int(fields.get("aliveUntil", 0))
            if not fields or now_ms - alive_until > FORGET_OFFLINE_MS:
                self._client.srem(self._keys.workers_index, name)
                self._client.delete(self._keys.worker(name))
                continue
            workers.append(
                {
                    **json.loads(fields.get("info", "{}")),
                    "name": name,
                    "status": "online" if alive_until > now_ms else "offline",
                    "lastHeartbeat": iso_from_ms(int(fields.get("lastHeartbeat", 0))),
                }
            )
        return workers
