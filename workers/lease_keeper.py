"""The lease keeper of a running step: renews the run's lease (and its agent slot) while the
agent works, and abandons the run at its timeout where nothing else can stop it (threads and
solo pools: workers/time_limits.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from orchestrator.core.errors import StoreUnavailableError
from orchestrator.core.step_runs import StepRun
from orchestrator.engine.lifecycle import StepLifecycle

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews a run's lease (and its agent slot) every third of its length while the agent works.

    Given ``abandon_at_s`` (a ``time.monotonic()`` instant: the run's timeout, in a pool that
    cannot stop the agent) it stops renewing then and calls ``on_abandon``, which records the
    timeout; ``abandoned`` then tells the runtime to drop the run's late outcome."""

    def __init__(
        self,
        lifecycle: StepLifecycle,
        run: StepRun,
        *,
        abandon_at_s: float | None = None,
        on_abandon: Callable[[], object] | None = None,
    ) -> None:
        self._lifecycle = lifecycle
        self._run = run
        self._abandon_at_s = abandon_at_s
        self._on_abandon = on_abandon
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lease-keeper", daemon=True)
        self.lost = False
        self.abandoned = False

    def _loop(self) -> None:
        interval_s = self._lifecycle.context.settings.lease_s / 3
        while not self._stop.wait(self._wait_s(interval_s)):
            if self._abandon_at_s is not None and time.monotonic() >= self._abandon_at_s:
                self._abandon()
                return
            try:
                if not self._lifecycle.renew(self._run):
                    self.lost = True
                    return
            except StoreUnavailableError:
                log.warning("lease renewal failed for %s; retrying", self._run.step_id)

    def _wait_s(self, interval_s: float) -> float:
        if self._abandon_at_s is None:
            return interval_s
        return max(0.0, min(interval_s, self._abandon_at_s - time.monotonic()))

    def _abandon(self) -> None:
        self.abandoned = True
        if self._on_abandon is None:
            return
        try:
            self._on_abandon()
        except Exception as exc:  # noqa: BLE001 - the lease lapses; the reconciler recovers it
            log.warning("could not record the timeout of %s: %s", self._run.step_id, exc)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
