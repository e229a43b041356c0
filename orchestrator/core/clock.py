"""The one clock of a process: every engine part and store call takes the time from it, so a
test (or a skewed host) changes time in one place.

Every real process (the API, a worker's main and pool processes, the CLI's checks) runs on
``orchestrator.store.redis_clock.RedisClock``, this class on Redis's time, so times written by
one host and compared by another (leases, deadlines, heartbeats) agree whatever the hosts' wall
clocks say. ``SYSTEM_CLOCK``, this host's wall clock, is for tests and pure computations."""

from __future__ import annotations

import time
from collections.abc import Callable


class Clock:
    """Wall-clock time from ``source`` (seconds since the epoch, ``time.time`` by default)."""

    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self._source = source

    def __call__(self) -> float:
        return self._source()

    def now_ms(self) -> int:
        """Milliseconds since the epoch, as every record and script stores times."""
        return int(self._source() * 1000)


SYSTEM_CLOCK = Clock()
