"""Celery ETAs on Redis's clock, so a delayed step message waits as long as it was meant to
whichever hosts send and receive it.

Celery turns a ``countdown`` into an absolute ETA on the sender's wall clock, and the worker
that receives the message waits for that instant on its own wall clock (celery 5.7:
``strategy.task_message_handler`` hands ``to_timestamp(req.eta)`` to the consumer's timer). A
retry meant for half a second later, sent by a host 10 minutes ahead, would wait 20 minutes on a
host 10 minutes behind (long past the step's reservation: the reconciler would take the step
back), and not at all the other way. So the ETA of a step message is written on Redis's clock
(``eta_after``, with the sender's RedisClock) and the receiving worker's main process moves it
onto its own wall clock by the offset it measured (``local_eta``, in
``workers.time_limits.StepRequest``). Between hosts whose clocks agree this changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.core.clock import Clock
from orchestrator.store.redis_clock import RedisClock


def eta_after(clock: Clock, delay_s: float) -> datetime:
    """The instant ``delay_s`` after now on ``clock`` (the process's, i.e. Redis's, time)."""
    return datetime.fromtimestamp(clock() + delay_s, tz=UTC)


def local_eta(eta: datetime | None, clock: Clock | None) -> datetime | None:
    """A message's ETA (on Redis's clock) on this host's wall clock, by ``clock``'s measured
    offset; unchanged when ``clock`` does not follow Redis."""
    if eta is None or not isinstance(clock, RedisClock):
        return eta
    return eta - timedelta(seconds=clock.offset_s)
