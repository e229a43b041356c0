"""The process's clock on Redis's time (orchestrator/store/redis_clock.py) with fake host clocks
and a fake TIME, then a real TIME answer; and the step messages' ETAs written on it and read
back on a skewed host's clock (workers/etas.py, StepRequest.eta). Real skewed workers:
tests/integration/test_clock_skew.py."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
import redis
from celery.contrib.testing.mocks import TaskMessage

from orchestrator.core.clock import Clock
from orchestrator.settings import Settings
from orchestrator.store.redis_clock import (
    MAX_ROUND_TRIP_S,
    RESYNC_INTERVAL_S,
    RETRY_INTERVAL_S,
    RedisClock,
)
from workers.celery_app import RUN_STEP_TASK, create_celery_app
from workers.etas import eta_after, local_eta
from workers.time_limits import StepRequest

HOST_WALL_S = 1_000_000.0  # this host's wall clock at the start
REDIS_AHEAD_S = 600.0  # Redis's clock is 10 minutes ahead of this host's


class Host:
    """This host's wall and monotonic clocks, moved by the test."""

    def __init__(self) -> None:
        self.wall_s = HOST_WALL_S
        self.monotonic_s = 50.0

    def wall(self) -> float:
        return self.wall_s

    def monotonic(self) -> float:
        return self.monotonic_s

    def advance(self, seconds: float) -> None:
        self.wall_s += seconds
        self.monotonic_s += seconds


class FakeTime:
    """A Redis client whose TIME answers ``REDIS_AHEAD_S`` ahead of ``host`` (or ``skew_s``), in
    the middle of a round trip of ``round_trip_s``; ``down`` makes it raise as redis-py does."""

    def __init__(self, host: Host, round_trip_s: float = 0.002) -> None:
        self.host = host
        self.round_trip_s = round_trip_s
        self.skew_s = REDIS_AHEAD_S
        self.down = False
        self.calls = 0

    def time(self) -> tuple[int, int]:
        self.calls += 1
        if self.down:
            raise redis.ConnectionError("Error 111 connecting. Connection refused.")
        self.host.advance(self.round_trip_s / 2)
        now_s = self.host.wall_s + self.skew_s
        self.host.advance(self.round_trip_s / 2)
        seconds = int(now_s)
        return seconds, round((now_s - seconds) * 1_000_000)


@pytest.fixture
def host() -> Host:
    return Host()


def clock_on(server: FakeTime, host: Host) -> RedisClock:
    return RedisClock(server, wall=host.wall, monotonic=host.monotonic)  # type: ignore[arg-type]


def test_the_clock_tells_redis_time_measured_at_the_middle_of_the_round_trip(host):
    server = FakeTime(host, round_trip_s=0.2)
    clock = clock_on(server, host)

    assert clock() == pytest.approx(HOST_WALL_S + 0.2 + REDIS_AHEAD_S, abs=1e-6)
    assert clock.now_ms() == int((HOST_WALL_S + 0.2 + REDIS_AHEAD_S) * 1000)
    assert clock.offset_s == pytest.approx(REDIS_AHEAD_S, abs=1e-6)
    assert isinstance(clock, Clock) and server.calls == 1


def test_between_measurements_it_follows_the_monotonic_clock_not_the_hosts_wall_clock(host):
    server = FakeTime(host)
    clock = clock_on(server, host)
    started = clock()

    host.monotonic_s += 5.0
    host.wall_s -= 3600.0  # the host's wall clock is stepped back an hour meanwhile

    assert clock() == pytest.approx(started + 5.0, abs=1e-6)
    assert server.calls == 1


def test_it_measures_again_when_a_measurement_is_due_and_follows_a_stepped_redis_clock(host):
    server = FakeTime(host)
    clock = clock_on(server, host)
    clock()
    host.advance(RESYNC_INTERVAL_S - 1)
    clock()
    assert server.calls == 1

    server.skew_s = REDIS_AHEAD_S + 2.0  # Redis's host stepped its clock two seconds forward
    host.advance(1)

    assert clock() == pytest.approx(host.wall_s + REDIS_AHEAD_S + 2.0, abs=0.01)
    assert server.calls == 2


def test_before_redis_ever_answers_it_tells_the_hosts_time_and_retries_after_a_pause(host, caplog):
    server = FakeTime(host)
    server.down = True
    clock = clock_on(server, host)

    with caplog.at_level(logging.WARNING, logger="orchestrator.store.redis_clock"):
        assert clock() == HOST_WALL_S
        assert clock() == HOST_WALL_S  # no second try before the pause
        assert server.calls == 1
        host.advance(RETRY_INTERVAL_S)
        assert clock() == host.wall_s  # tried again, still down
        assert server.calls == 2
    assert [r.getMessage() for r in caplog.records] == [
        "could not read Redis's clock (Redis did not answer TIME: Error 111 connecting. "
        "Connection refused.); using this host's wall clock"
    ]

    server.down = False
    host.advance(RETRY_INTERVAL_S)
    assert clock() == pytest.approx(host.wall_s + REDIS_AHEAD_S, abs=0.01)
    assert clock.offset_s == pytest.approx(REDIS_AHEAD_S, abs=0.01)


def test_when_redis_stops_answering_it_keeps_the_last_measurement(host):
    server = FakeTime(host)
    clock = clock_on(server, host)
    clock()
    server.down = True
    host.advance(RESYNC_INTERVAL_S)

    assert clock() == pytest.approx(host.wall_s + REDIS_AHEAD_S, abs=0.01)
    assert clock.sync() is False
    host.advance(RETRY_INTERVAL_S / 2)
    calls = server.calls
    assert clock() == pytest.approx(host.wall_s + REDIS_AHEAD_S, abs=0.01)
    assert server.calls == calls  # the retry waits for its pause


def test_a_slow_answer_replaces_no_measurement_but_is_better_than_none(host):
    slow = FakeTime(host, round_trip_s=MAX_ROUND_TRIP_S * 4)
    clock = clock_on(slow, host)
    assert clock.sync() is True  # the first one: uncertain by a second, not by ten minutes
    first = clock.measurement

    assert clock.sync() is False
    assert clock.measurement == first


def test_two_processes_on_hosts_twenty_minutes_apart_tell_the_same_time(host):
    ahead, behind = Host(), Host()
    behind.wall_s = ahead.wall_s - 1200.0
    ahead_server, behind_server = FakeTime(ahead), FakeTime(behind)
    ahead_server.skew_s, behind_server.skew_s = -600.0, 600.0  # Redis's clock is in between

    assert clock_on(ahead_server, ahead)() == pytest.approx(clock_on(behind_server, behind)())


def test_on_a_real_time_answer_it_tells_redis_servers_time(any_redis):
    seconds, microseconds = any_redis.time()
    clock = RedisClock(any_redis)

    assert clock() == pytest.approx(seconds + microseconds / 1e6, abs=1.0)
    assert clock.measurement is not None and clock.measurement.round_trip_s < 1.0


def test_a_retry_eta_sent_from_a_host_ahead_is_the_same_instant_on_a_host_behind():
    sender_host, receiver_host = Host(), Host()
    receiver_host.wall_s = sender_host.wall_s - 1200.0  # 20 minutes behind the sender
    sender_server, receiver_server = FakeTime(sender_host), FakeTime(receiver_host)
    sender_server.skew_s, receiver_server.skew_s = -600.0, 600.0
    sender = clock_on(sender_server, sender_host)
    receiver = clock_on(receiver_server, receiver_host)

    eta = eta_after(sender, 0.5)
    on_receiver = local_eta(eta, receiver)

    assert on_receiver is not None
    assert on_receiver.timestamp() == pytest.approx(receiver_host.wall_s + 0.5, abs=0.01)
    assert local_eta(eta, Clock()) == eta and local_eta(None, receiver) is None


def test_a_workers_step_request_waits_for_the_eta_on_its_own_wall_clock(host):
    receiver = clock_on(FakeTime(host), host)
    app = create_celery_app(Settings())
    app.conf.meowstik_clock = receiver
    eta = datetime.fromtimestamp(host.wall_s + REDIS_AHEAD_S + 30, tz=UTC)  # Redis time
    message = TaskMessage(RUN_STEP_TASK, args=["s-1", "A", "a-1"], eta=eta.isoformat())

    request = StepRequest(message, app=app, task=app.tasks[RUN_STEP_TASK])

    assert request.eta is not None
    assert request.eta.timestamp() == pytest.approx(host.wall_s + 30, abs=0.01)
