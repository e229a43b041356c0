"""Issue 23, the worker's side: a claim or an outcome Redis refuses (out of memory, MISCONF) or
does not answer is tried again with growing waits, never failed; and the broker transport keeps
consuming through a refused BRPOP instead of stopping the worker."""

from __future__ import annotations

import pytest
import redis
from kombu.transport.virtual import Empty

from orchestrator.core.errors import (
    PermanentStepError,
    StoreNotWritableError,
    StoreOutOfMemoryError,
    StoreUnavailableError,
)
from workers.broker_transport import (
    SENTINEL_TRANSPORT,
    TRANSPORT,
    RefusalTolerance,
    transport_for,
)
from workers.store_retry import MAX_DELAY_S, StoreRetry, delays_s

RDB = "MISCONF Redis is configured to save RDB snapshots, but it is currently not able to persist"


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now_s += seconds

    def monotonic(self) -> float:
        return self.now_s


def operation(*outcomes):
    """Raises or returns each outcome in turn; counts its calls."""
    pending = list(outcomes)

    def call():
        call.calls += 1
        outcome = pending.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    call.calls = 0
    return call


def retry_with(clock: FakeClock, give_up_after_s: float = 300.0) -> StoreRetry:
    return StoreRetry(give_up_after_s, sleep=clock.sleep, monotonic=clock.monotonic)


def test_a_refused_write_is_tried_again_with_growing_waits_until_it_is_recorded():
    clock = FakeClock()
    refused = operation(
        StoreOutOfMemoryError(),
        StoreOutOfMemoryError(),
        StoreNotWritableError("aof"),
        StoreUnavailableError.no_answer("ConnectionError"),
        "recorded",
    )

    assert retry_with(clock).call(refused, "record the output", {"stepId": "a"}) == "recorded"
    assert refused.calls == 5 and clock.slept == [0.1, 0.2, 0.4, 0.8]


def test_it_gives_up_with_the_last_error_once_the_next_wait_would_pass_its_limit():
    clock = FakeClock()
    never = operation(*[StoreOutOfMemoryError()] * 10)

    with pytest.raises(StoreOutOfMemoryError):
        retry_with(clock, give_up_after_s=1.0).call(never, "record the output", {})

    assert clock.slept == [0.1, 0.2, 0.4]  # 0.7 s waited; 0.8 s more would pass 1 s


@pytest.mark.parametrize(
    "error",
    [
        StoreUnavailableError.refused_credentials(),  # waiting does not fix a password
        PermanentStepError("not a store error"),
        ValueError("a bug"),
    ],
)
def test_errors_waiting_cannot_fix_are_raised_at_once(error):
    clock = FakeClock()
    with pytest.raises(type(error)):
        retry_with(clock).call(operation(error, "never"), "claim the step", {})
    assert clock.slept == []


def test_a_zero_limit_calls_once():
    clock = FakeClock()
    once = operation(StoreOutOfMemoryError(), "never")
    with pytest.raises(StoreOutOfMemoryError):
        retry_with(clock, give_up_after_s=0).call(once, "claim the step", {})
    assert once.calls == 1


def test_the_waits_double_up_to_two_seconds():
    waits = delays_s()
    assert [next(waits) for _ in range(8)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    assert MAX_DELAY_S == 2.0


# --- the broker transport -----------------------------------------------------------------------


class FakeChannel:
    """The two methods of kombu's Redis channel the tolerance wraps."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.sent = 0

    def _brpop_start(self, timeout=None) -> None:
        self.sent += 1

    def _brpop_read(self, **options):
        if self.error is not None:
            raise self.error
        return True


class TolerantChannel(RefusalTolerance, FakeChannel):
    pass


def test_a_refused_brpop_pauses_polling_instead_of_raising():
    channel = TolerantChannel(redis.ResponseError(RDB))

    with pytest.raises(Empty):  # kombu's "no message": the event loop goes on
        channel._brpop_read()
    channel._brpop_start()

    assert channel.sent == 0  # paused
    channel._paused_until_s = 0.0
    channel._brpop_start()
    assert channel.sent == 1


def test_other_brpop_errors_are_raised_as_before():
    channel = TolerantChannel(redis.ResponseError("WRONGTYPE Operation against a key"))
    with pytest.raises(redis.ResponseError):
        channel._brpop_read()
    assert channel._paused_until_s == 0.0


@pytest.mark.parametrize(
    "url, transport",
    [
        ("redis://127.0.0.1:6379/0", TRANSPORT),
        ("rediss://cache.example:6380/0", TRANSPORT),
        ("sentinel://s1:26379;sentinel://s2:26379", SENTINEL_TRANSPORT),
        ("unix:///run/redis.sock", None),
    ],
)
def test_the_tolerant_transport_is_chosen_by_the_urls_scheme(url, transport):
    assert transport_for(url) == transport
