"""Retrying a step run's store writes while Redis does not answer or refuses writes.

Claiming a step and recording what came of its run (output, failure, input request, timeout)
are single atomic store operations (a Lua script, with its log entries in the same MULTI): when
Redis refuses one (out of memory: ``StoreOutOfMemoryError``; cannot persist:
``StoreNotWritableError``) nothing of it was recorded, so calling it again is safe. When Redis
did not answer, the call may have landed with its reply lost: a claim then answers "leased"
the second time (the message comes back after the lease) and an outcome is refused by its run
token, so nothing is recorded twice. The worker therefore waits and calls again, with
exponential backoff, holding the step's message unacknowledged: the step is neither failed nor
lost, and its output is recorded once Redis accepts writes.

After MEOWSTIK_WORKER_STORE_RETRY_S the error is raised: the task ends and the step is left to
the reconciler (its deadline passes; orchestrator/engine/recovery.py). An outage longer than
the lease (MEOWSTIK_LEASE_S) may let the reconciler run the step again once Redis accepts
writes; the late output is then refused by its token, so a step's output is still recorded
once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from orchestrator.core.errors import StoreUnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_DELAY_S = 0.1
MAX_DELAY_S = 2.0


def delays_s(first_s: float = FIRST_DELAY_S, most_s: float = MAX_DELAY_S):
    """0.1, 0.2, 0.4, ... s, doubling up to ``most_s``, forever."""
    delay_s = first_s
    while True:
        yield delay_s
        delay_s = min(most_s, delay_s * 2)


class StoreRetry:
    """Calls a store operation until it succeeds, it raises anything but a retryable
    StoreUnavailableError, or ``give_up_after_s`` passed (then its last error is raised).

    Args:
        give_up_after_s: MEOWSTIK_WORKER_STORE_RETRY_S; 0 calls once.
        sleep, monotonic: the clock (tests pass fakes).
    """

    def __init__(
        self,
        give_up_after_s: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.give_up_after_s = give_up_after_s
        self._sleep = sleep
        self._monotonic = monotonic

    def call(self, operation: Callable[[], T], what: str, ids: Mapping[str, str]) -> T:
        """``operation()``'s result; ``what`` (e.g. "record the output") and ``ids`` (the
        step's) name it in the log."""
        started_s = self._monotonic()
        delays = delays_s()
        tries = 1
        while True:
            try:
                result = operation()
            except StoreUnavailableError as exc:
                waited_s, delay_s = self._monotonic() - started_s, next(delays)
                if not exc.retryable or waited_s + delay_s > self.give_up_after_s:
                    if tries > 1:
                        log.error("gave up trying to %s after %.1f s: %s", what, waited_s, exc)
                    raise
                level = logging.WARNING if tries == 1 else logging.DEBUG
                log.log(level, "could not %s (%s); retrying", what, exc.code, extra=dict(ids))
                self._sleep(delay_s)
                tries += 1
                continue
            if tries > 1:
                log.info("%s: done at try %d", what, tries, extra=dict(ids))
            return result
