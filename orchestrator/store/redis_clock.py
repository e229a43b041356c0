"""The process's clock on Redis's time, so that every process of a deployment agrees on "now"
whatever its host's wall clock says.

Leases, deadlines, heartbeats, slot expiries and queued-at times are written by one process and
compared by another (a worker's lease by another worker's reconciler, a heartbeat by the API), so
they must all be read off one clock: the Redis server's. ``RedisClock`` measures it with ``TIME``
(the midpoint of the round trip) and then follows it on this process's monotonic clock:
``redis_time_at_sync + (monotonic() - monotonic_at_sync)``. It measures again every
``RESYNC_INTERVAL_S`` on the thread that asks the time when one is due (one ``TIME``, a
sub-millisecond round trip), which follows a Redis clock that NTP steps and a failover to a
server whose clock differs. It never raises: while Redis does not answer it keeps the last
measurement, and before the first one it reads the local wall clock and tries again after
``RETRY_INTERVAL_S``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from orchestrator.core.clock import Clock

log = logging.getLogger(__name__)

RESYNC_INTERVAL_S = 30.0
RETRY_INTERVAL_S = 1.0  # after a measurement failed (Redis down, or a round trip too slow)
# A slower answer leaves its midpoint too uncertain: it replaces an earlier measurement only if
# none was ever taken.
MAX_ROUND_TRIP_S = 0.5


@dataclass(frozen=True)
class Measurement:
    """Redis's time (s since the epoch) at this process's monotonic instant ``monotonic_s``: the
    middle of a round trip of ``round_trip_s``."""

    redis_s: float
    monotonic_s: float
    round_trip_s: float


class RedisClock(Clock):
    """Redis's time, measured with ``TIME`` and followed on the monotonic clock (see the module
    docstring). One per process, shared by its threads; ``wall`` and ``monotonic`` are this
    host's clocks (tests pass fakes)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        resync_interval_s: float = RESYNC_INTERVAL_S,
        retry_interval_s: float = RETRY_INTERVAL_S,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(self._now_s)
        self._client = client
        self._resync_interval_s = resync_interval_s
        self._retry_interval_s = retry_interval_s
        self._wall = wall
        self._monotonic = monotonic
        self.measurement: Measurement | None = None
        self._due_s = -math.inf  # monotonic instant of the next measurement
        self._failing = False
        self._lock = threading.Lock()
        self._pid = os.getpid()

    @property
    def offset_s(self) -> float:
        """How far Redis's clock is ahead of this host's wall clock (0.0 before a measurement):
        what turns a time in Redis's clock into this host's (e.g. a Celery ETA)."""
        now_s = self._now_s()  # measures first when a measurement is due
        return 0.0 if self.measurement is None else now_s - self._wall()

    def _now_s(self) -> float:
        if self._monotonic() >= self._due_s:
            self._measure_when_free()
        taken = self.measurement
        if taken is None:
            return self._wall()
        return taken.redis_s + (self._monotonic() - taken.monotonic_s)

    def sync(self) -> bool:
        """Measure Redis's time now; whether that gave a measurement. Never raises."""
        try:
            taken = self._measure()
        except Exception as exc:  # noqa: BLE001 - any failure: keep the last measurement
            self._note_failure(f"Redis did not answer TIME: {exc}")
            return False
        if taken.round_trip_s > MAX_ROUND_TRIP_S and self.measurement is not None:
            self._note_failure(f"TIME took {taken.round_trip_s:.3f} s; kept the last measurement")
            return False
        self.measurement, self._failing = taken, False
        return True

    def _measure_when_free(self) -> None:
        """Measure if no other thread is measuring, and set when the next is due."""
        if os.getpid() != self._pid:  # forked: another thread may have held the lock
            self._lock, self._pid = threading.Lock(), os.getpid()
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self._monotonic() < self._due_s:
                return
            interval_s = self._resync_interval_s if self.sync() else self._retry_interval_s
            self._due_s = self._monotonic() + interval_s
        finally:
            self._lock.release()

    def _measure(self) -> Measurement:
        started_s = self._monotonic()
        seconds, microseconds = self._client.time()
        ended_s = self._monotonic()
        return Measurement(
            redis_s=int(seconds) + int(microseconds) / 1_000_000,
            monotonic_s=(started_s + ended_s) / 2,
            round_trip_s=ended_s - started_s,
        )

    def _note_failure(self, why: str) -> None:
        """Warn once per run of failures (a Redis outage would otherwise warn every second)."""
        fallback = "the last measurement" if self.measurement else "this host's wall clock"
        if not self._failing:
            log.warning("could not read Redis's clock (%s); using %s", why, fallback)
        self._failing = True
