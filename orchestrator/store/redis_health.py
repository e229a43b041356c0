"""Reads what orchestrator/core/store_health.py judges: Redis's ``INFO memory`` (its
``maxmemory-policy`` and memory use) and whether it accepts a write-gated command, in one round
trip; and the eviction check every process runs when it starts.

Unreachable at a process's start, Redis is not waited for (as before this check): /healthz
checks on every call, and a worker's heartbeat on every beat (``EvictionGuard``), once Redis
answers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from orchestrator.core.errors import EvictionPolicyError, StoreUnavailableError
from orchestrator.core.store_health import MemoryInfo, StoreHealth, judge, parse_memory_info
from orchestrator.store.errors import refused_write, translate

log = logging.getLogger(__name__)
UNREAD = MemoryInfo(policy=None)


@dataclass(frozen=True)
class HealthReading:
    memory: MemoryInfo  # UNREAD when INFO was refused (renamed or not permitted)
    refused: StoreUnavailableError | None  # PING refused: Redis refuses writes (MISCONF)


class RedisHealth:
    """/healthz's reading of Redis."""

    def __init__(self, client: redis.Redis, allow_eviction: bool) -> None:
        self._client = client
        self.allow_eviction = allow_eviction

    def read(self) -> HealthReading:
        """PING and INFO memory in one pipeline (one round trip). PING is refused exactly when
        Redis refuses writes because it cannot persist (MISCONF); INFO works even then.

        Raises:
            StoreUnavailableError: Redis did not answer (or refused PING for another reason),
                the redis-py error chained as its cause.
        """
        pipe = self._client.pipeline(transaction=False)
        pipe.ping()
        pipe.info("memory")
        try:
            pong, info = pipe.execute(raise_on_error=False)
        except redis.RedisError as exc:
            raise translate(exc) from exc
        refused = None
        if isinstance(pong, redis.RedisError):
            refused = refused_write(pong)
            if refused is None:
                raise translate(pong) from pong
            refused.__cause__ = pong
        memory = UNREAD if isinstance(info, Exception) else parse_memory_info(info)
        return HealthReading(memory, refused)

    def verdict(self) -> StoreHealth:
        reading = self.read()
        return judge(reading.memory, reading.refused, self.allow_eviction)


def read_memory(client: redis.Redis) -> MemoryInfo:
    """``INFO memory``; UNREAD when Redis refuses INFO. Raises StoreUnavailableError when
    Redis does not answer."""
    try:
        return parse_memory_info(client.info("memory"))
    except (redis.ConnectionError, redis.TimeoutError, redis.AuthenticationError) as exc:
        raise translate(exc) from exc
    except redis.ResponseError as exc:
        log.warning(
            "could not read Redis's maxmemory-policy (INFO memory: %s); make sure it is "
            "noeviction, or keys may be evicted",
            exc,
        )
        return UNREAD


class EvictionGuard:
    """Refuses a Redis whose ``maxmemory-policy`` may evict keys, unless ``allow_eviction``
    (MEOWSTIK_REDIS_ALLOW_EVICTION) turns the refusal into a warning.

    Args:
        client: the process's Redis.
        allow_eviction: MEOWSTIK_REDIS_ALLOW_EVICTION.
        who: the process, for messages ("the API", "worker coder@host").
    """

    def __init__(self, client: redis.Redis, allow_eviction: bool, who: str) -> None:
        self._client = client
        self.allow_eviction = allow_eviction
        self.who = who
        self._refusing: str | None = None  # the policy allows_work last refused

    def check_at_start(self) -> MemoryInfo | None:
        """Check once when the process starts. Returns what was read; None when Redis did not
        answer (the check waits for it: /healthz, ``allows_work``).

        Raises:
            EvictionPolicyError: the policy may evict keys and eviction is not allowed.
        """
        try:
            memory = read_memory(self._client)
        except StoreUnavailableError as exc:
            log.info("%s did not check Redis's maxmemory-policy: %s", self.who, exc.message)
            return None
        if memory.evicting and memory.policy is not None:
            if not self.allow_eviction:
                raise EvictionPolicyError(memory.policy)
            self._warn_allowed(memory.policy)
        return memory

    def allows_work(self) -> bool:
        """Whether the policy lets this process take work now (read again on every call: a
        worker's heartbeat). False, with an error logged once, while the policy may evict keys
        and eviction is not allowed; True when Redis does not answer (the caller meets that)."""
        try:
            memory = read_memory(self._client)
        except StoreUnavailableError:
            return True
        if memory.evicting and memory.policy is not None and not self.allow_eviction:
            if self._refusing != memory.policy:
                log.error("%s takes no work: %s", self.who, EvictionPolicyError(memory.policy))
            self._refusing = memory.policy
            return False
        if self._refusing is not None:
            log.warning("%s takes work again: maxmemory-policy is %s", self.who, memory.policy)
        self._refusing = None
        return True

    def _warn_allowed(self, policy: str) -> None:
        log.warning(
            "%s runs on a Redis whose maxmemory-policy %r evicts keys when memory is full "
            "(MEOWSTIK_REDIS_ALLOW_EVICTION=true): session records may silently lose keys; set "
            "maxmemory-policy noeviction to be safe",
            self.who,
            policy,
        )
