"""Whether Redis, as it answers now, can hold this product's records: its ``maxmemory-policy``
must not evict keys (an evicting Redis silently drops session keys when memory is full), and it
must accept writes (not out of memory under ``noeviction``, not refusing them with MISCONF).

Pure: orchestrator/store/redis_health.py reads the numbers (``INFO memory``, not CONFIG GET,
which managed Redis services often rename or disable), this judges them; /healthz, the API's
and workers' start and the workers' heartbeat use the verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.core.errors import (
    EvictionPolicyError,
    StoreOutOfMemoryError,
    StoreUnavailableError,
)

NOEVICTION = "noeviction"
EVICTION_CODE = EvictionPolicyError.code


@dataclass(frozen=True)
class MemoryInfo:
    """What ``INFO memory`` says. ``policy`` None: it could not be read (INFO refused)."""

    policy: str | None
    used_bytes: int = 0
    max_bytes: int = 0  # 0: no maxmemory
    not_counted_bytes: int = 0  # replication and AOF buffers Redis leaves out of maxmemory

    @property
    def evicting(self) -> bool:
        return self.policy is not None and self.policy != NOEVICTION

    @property
    def out_of_memory(self) -> bool:
        """Redis's own rule for refusing writes: used memory, less what it does not count,
        above maxmemory, with no policy to free it."""
        if self.max_bytes <= 0 or self.policy != NOEVICTION:
            return False
        return self.used_bytes - self.not_counted_bytes > self.max_bytes


def parse_memory_info(info: Mapping[str, Any]) -> MemoryInfo:
    """The fields of redis-py's parsed ``INFO memory`` reply this module needs."""
    policy = info.get("maxmemory_policy")
    return MemoryInfo(
        policy=str(policy) if policy is not None else None,
        used_bytes=int(info.get("used_memory", 0) or 0),
        max_bytes=int(info.get("maxmemory", 0) or 0),
        not_counted_bytes=int(info.get("mem_not_counted_for_evict", 0) or 0),
    )


@dataclass(frozen=True)
class HealthNote:
    """One reason in /healthz's ``problems`` (503) or ``warnings`` (200)."""

    code: str
    message: str
    summary: str  # a few words for /healthz's ``redis`` field


@dataclass(frozen=True)
class StoreHealth:
    problems: tuple[HealthNote, ...] = ()
    warnings: tuple[HealthNote, ...] = ()

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def summary(self) -> str:
        return "; ".join(note.summary for note in self.problems) or "ok"


def eviction_note(policy: str, allowed: bool) -> HealthNote:
    """Why an evicting policy is a problem, or (``allowed``: MEOWSTIK_REDIS_ALLOW_EVICTION) a
    warning."""
    summary = f"maxmemory-policy {policy} evicts keys"
    if not allowed:
        return HealthNote(EVICTION_CODE, EvictionPolicyError(policy).message, summary)
    return HealthNote(
        EVICTION_CODE,
        f"Redis's maxmemory-policy is {policy!r}, which evicts keys when memory is full: "
        "session records may silently lose keys. MEOWSTIK_REDIS_ALLOW_EVICTION=true lets the "
        "cluster run anyway; set maxmemory-policy noeviction to be safe",
        summary,
    )


def refusal_note(refused: StoreUnavailableError) -> HealthNote:
    """A Redis refusing writes (StoreOutOfMemoryError, StoreNotWritableError)."""
    what = "out of memory" if isinstance(refused, StoreOutOfMemoryError) else "cannot persist"
    return HealthNote(refused.code, refused.message, f"{what}: refuses writes")


def judge(
    memory: MemoryInfo, refused: StoreUnavailableError | None, allow_eviction: bool
) -> StoreHealth:
    """The verdict on a Redis that answered: ``memory`` from INFO, ``refused`` the refusal of a
    write-gated command (PING is refused under MISCONF), if any."""
    problems: list[HealthNote] = []
    warnings: list[HealthNote] = []
    if memory.evicting and memory.policy is not None:
        (warnings if allow_eviction else problems).append(
            eviction_note(memory.policy, allow_eviction)
        )
    if refused is not None:
        problems.append(refusal_note(refused))
    elif memory.out_of_memory:
        problems.append(refusal_note(StoreOutOfMemoryError()))
    return StoreHealth(tuple(problems), tuple(warnings))
