"""Per-caller rate limits kept in Redis (GCRA), so they hold across every API process and host.

While Redis refuses writes (out of memory, MISCONF) a check cannot record the request: it lets
the request through rather than answer 503 to every request, reads included; the request's own
writes are refused anyway (503 ``store_out_of_memory`` / ``store_not_writable``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources

import redis

from orchestrator.store.errors import refused_write, translates_redis_errors
from orchestrator.store.keys import Keys

log = logging.getLogger(__name__)


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
        try:
            allowed, retry_after_ms = self._script(
                keys=[self._keys.rate_limit(caller)], args=[interval_us, self.burst]
            )
        except redis.ResponseError as exc:
            refused = refused_write(exc)
            if refused is None:
                raise
            log.warning("rate limit not counted, request let through: %s", refused.code)
            return Verdict(True, 0)
        return Verdict(bool(allowed), 0 if allowed else max(1, -(-int(retry_after_ms) // 1000)))
