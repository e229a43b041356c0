"""Per-caller rate limits kept in Redis (GCRA), so they hold across every API process and host."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import redis

from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_s: int  # whole seconds, at least 1 when refused


@translates_redis_errors
class RateLimiter:
    """``per_minute`` requests a minute on average, ``burst`` at once; one EVALSHA per check."""

    def __init__(self, client: redis.Redis, keys: Keys, per_minute: int, burst: int) -> None:
        self._keys = keys
        self.per_minute, self.burst = per_minute, burst
        source = resources.files("orchestrator.store").joinpath("lua/rate_limit.lua").read_text()
        self._script = client.register_script(source)

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def check(self, caller: str) -> Verdict:
        if not self.enabled:
            return Verdict(True, 0)
        interval_us = 60_000_000 // self.per_minute
        allowed, retry_after_ms = self._script(
            keys=[self._keys.rate_limit(caller)], args=[interval_us, self.burst]
        )
        return Verdict(bool(allowed), 0 if allowed else max(1, -(-int(retry_after_ms) // 1000)))
