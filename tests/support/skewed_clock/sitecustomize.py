"""A wall clock off by ``TEST_CLOCK_SKEW_S`` seconds, for a test's worker process: Python imports
``sitecustomize`` from its path at start (tests/support/skew.py puts this directory first on
PYTHONPATH), before any module reads the time, so everything that asks the wall clock in that
process (and in the pool processes it forks) sees the skewed one, as on a host whose clock is
wrong: ``time.time``, ``time.time_ns``, ``time.clock_gettime(CLOCK_REALTIME)``, the no-argument
``time.localtime``/``gmtime``/``ctime``/``asctime``/``strftime``, and ``datetime.now``,
``utcnow`` and ``today``. ``time.monotonic`` keeps running as it does on a skewed host."""

from __future__ import annotations

import datetime as _datetime
import os
import time as _time

_SKEW_S = float(os.environ.get("TEST_CLOCK_SKEW_S") or 0)
_SKEW_NS = int(_SKEW_S * 1_000_000_000)


def _install() -> None:
    real_time, real_time_ns = _time.time, _time.time_ns
    real_gettime, real_gettime_ns = _time.clock_gettime, _time.clock_gettime_ns
    real_localtime, real_gmtime = _time.localtime, _time.gmtime
    real_strftime = _time.strftime

    def time() -> float:
        return real_time() + _SKEW_S

    def time_ns() -> int:
        return real_time_ns() + _SKEW_NS

    def clock_gettime(clock: int) -> float:
        return real_gettime(clock) + (_SKEW_S if clock == _time.CLOCK_REALTIME else 0)

    def clock_gettime_ns(clock: int) -> int:
        return real_gettime_ns(clock) + (_SKEW_NS if clock == _time.CLOCK_REALTIME else 0)

    def localtime(seconds: float | None = None) -> _time.struct_time:
        return real_localtime(time() if seconds is None else seconds)

    def gmtime(seconds: float | None = None) -> _time.struct_time:
        return real_gmtime(time() if seconds is None else seconds)

    def ctime(seconds: float | None = None) -> str:
        return _time.asctime(localtime(seconds))

    def strftime(fmt: str, moment: _time.struct_time | None = None) -> str:
        return real_strftime(fmt, localtime() if moment is None else moment)

    _time.time, _time.time_ns = time, time_ns
    _time.clock_gettime, _time.clock_gettime_ns = clock_gettime, clock_gettime_ns
    _time.localtime, _time.gmtime, _time.ctime, _time.strftime = localtime, gmtime, ctime, strftime
    _datetime.datetime = _skewed_datetime(_datetime.datetime)


def _skewed_datetime(real: type[_datetime.datetime]) -> type[_datetime.datetime]:
    """``datetime.datetime`` whose now/utcnow/today read the skewed clock; its instances are
    plain datetimes, and plain datetimes count as its instances."""

    class Meta(type):
        def __instancecheck__(cls, instance: object) -> bool:
            return isinstance(instance, real)

        def __subclasscheck__(cls, subclass: type) -> bool:
            return issubclass(subclass, real)

    class SkewedDatetime(real, metaclass=Meta):
        @classmethod
        def now(cls, tz=None):
            return real.fromtimestamp(_time.time(), tz)

        @classmethod
        def utcnow(cls):
            return real.fromtimestamp(_time.time(), _datetime.UTC).replace(tzinfo=None)

        @classmethod
        def today(cls):
            return real.fromtimestamp(_time.time())

    SkewedDatetime.__name__ = SkewedDatetime.__qualname__ = "datetime"
    SkewedDatetime.__module__ = "datetime"
    return SkewedDatetime


if _SKEW_S:
    _install()
