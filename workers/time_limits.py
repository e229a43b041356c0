"""Step timeouts in a Celery worker: Celery's soft and hard time limits for each step message,
and the records they lead to (what the engine does with them: orchestrator/engine/timeouts.py).

How Celery behaves, as read in its source (celery 5.7, billiard 4.3):

- A worker's ``Request`` hands ``time_limits`` (hard, soft) to ``pool.apply_async(timeout=,
  soft_timeout=)`` when it gives the message to the pool (``execute_using_pool`` in
  celery/worker/request.py, and the copy ``create_request_cls`` makes). ``StepRequest`` decides
  them there, in the worker's main process: the run's timeout from the step's and the agent's
  ``timeoutS`` as Redis holds them then (one round trip), so neither the dispatcher nor the Lua
  routing has to know it, and a message's own ``timelimit`` header is ignored.
- prefork: the timers start when the pool process acknowledges the job (billiard
  ``ApplyResult._ack`` calls the AsynPool's ``on_timeout_set``: ``hub.call_later``). At the soft
  limit the main process sends SIGUSR1 (``TimeoutHandler.on_soft_timeout``), whose handler in the
  pool process (``soft_timeout_sighandler``) raises ``SoftTimeLimitExceeded`` wherever its main
  thread is. At the hard limit (``on_hard_timeout``) the job ends with ``TimeLimitExceeded``,
  ``Request.on_timeout(soft=False)`` runs in the main process, and the pool process gets SIGTERM,
  then SIGKILL 0.1 s later (``_trywaitkill``); the pool starts a new one.
- That message (acks_late) is then acknowledged, not redelivered: ``task_acks_on_timeout``
  defaults to True and ``reject_on_worker_lost`` does not apply (the job ended with
  ``TimeLimitExceeded``, not ``WorkerLostError``). Its step would stay ``running`` until its lease
  lapsed and the reconciler rerouted it, so ``StepRequest.on_timeout`` records the timeout at
  once, in the main process, with the run token it gave the message (the record refuses it if
  that run no longer owns the step). The reconciler remains the fallback if Redis is down then.
- threads and solo pools have no time limits (the thread pool's ``on_apply`` drops both; solo
  runs the task inline): no soft limit reaches the agent there. The runtime's lease keeper
  records the timeout at the limit and abandons the run instead (a thread cannot be stopped: it
  goes on until its agent returns, and its outcome is refused by its token).
"""

from __future__ import annotations

import logging
import re
import secrets
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import FrameType
from typing import Any

from billiard.pool import soft_timeout_sighandler
from celery.exceptions import SoftTimeLimitExceeded
from celery.worker import state
from celery.worker.request import Request

from orchestrator.core.timeouts import TimeLimits
from workers.etas import local_eta
from workers.tasks import valid_payload

log = logging.getLogger(__name__)

# what the main process adds to a step message's request, read by the task in the pool process
RUN_TOKEN_FIELD = "meowstik_run_token"
TIMEOUT_FIELD = "meowstik_timeout_s"
_TOKEN = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class RunLimits:
    """What the worker's main process decided for one step message: the token the run claims the
    step with (so the main process can record its timeout) and its timeout (None: none)."""

    token: str | None = None
    timeout_s: float | None = None

    @classmethod
    def of(cls, request: Any) -> RunLimits:
        """From the task's request (``self.request``); anything malformed counts as unset."""
        token = getattr(request, RUN_TOKEN_FIELD, None)
        value = getattr(request, TIMEOUT_FIELD, None)
        timeout_s = None
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            timeout_s = float(value)
        return cls(token if isinstance(token, str) and _TOKEN.fullmatch(token) else None, timeout_s)


class StepRequest(Request):
    """The worker's Request for ``meowstik.run_step`` (the task's ``Request``): a run token per
    delivery, the time limits of the step's timeout, the record of a run killed at its hard
    limit, and the message's ETA moved from Redis's clock onto this host's (workers/etas.py).
    Its hooks live in the app's configuration (``meowstik_timeouts``: the engine's StepTimeouts,
    and ``meowstik_clock``: the main process's clock, set by workers/hosting.py); without them a
    message runs with no limit, at its ETA as written."""

    _limits: tuple[float | None, float | None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # set here whatever the message said: header fields become request fields
        self._request_dict[RUN_TOKEN_FIELD] = secrets.token_hex(8)
        self._request_dict[TIMEOUT_FIELD] = None

    @property
    def eta(self) -> datetime | None:
        """When to run the message, on this host's wall clock (Celery's timer waits for it)."""
        return local_eta(self._eta, self._app.conf.get("meowstik_clock"))

    @property
    def time_limits(self) -> tuple[float | None, float | None]:
        """(hard, soft), decided once, when Celery hands the message to the pool."""
        if self._limits is None:
            self._limits = self._decide_limits()
        return self._limits

    @time_limits.setter
    def time_limits(self, value: Any) -> None:
        """A message's own ``timelimit`` header: ignored (the step's record decides)."""

    def _ids(self) -> tuple[str, str, str] | None:
        args = self._args
        if self._kwargs or not isinstance(args, list | tuple) or len(args) != 3:
            return None
        session_id, step_id, agent_id = args
        if agent_id is None or not valid_payload(session_id, step_id, agent_id):
            return None
        return session_id, step_id, agent_id

    def _decide_limits(self) -> tuple[float | None, float | None]:
        conf = self._app.conf
        timeouts, ids = conf.get("meowstik_timeouts"), self._ids()
        if timeouts is None or ids is None:
            return (None, None)
        try:
            timeout_s = timeouts.limit_s(*ids)
        except Exception as exc:  # noqa: BLE001 - Redis did not answer: this run has no limit
            log.warning("could not read the step's timeout: %s", exc, extra={"stepId": ids[1]})
            return (None, None)
        if timeout_s is None:
            return (None, None)
        self._request_dict[TIMEOUT_FIELD] = timeout_s
        grace_s = conf.meowstik_settings.step_timeout_grace_s
        return TimeLimits.of(timeout_s, grace_s).celery()

    def on_timeout(self, soft: bool, timeout: float) -> None:
        """Celery's handling, then, at the hard limit, the step's timeout recorded at once (not
        during a cold shutdown: that cut is the shutdown's, and the reconciler's to recover)."""
        try:
            super().on_timeout(soft, timeout)
        finally:
            if not soft and not state.should_terminate:
                self._record_killed()

    def _record_killed(self) -> None:
        timeouts, ids = self._app.conf.get("meowstik_timeouts"), self._ids()
        limits = RunLimits(
            self._request_dict.get(RUN_TOKEN_FIELD), self._request_dict.get(TIMEOUT_FIELD)
        )
        if timeouts is None or ids is None or limits.token is None or limits.timeout_s is None:
            return
        try:
            transition = timeouts.time_out_killed(
                *ids, token=limits.token, timeout_s=limits.timeout_s
            )
        except Exception as exc:  # noqa: BLE001 - the reconciler recovers it after its lease
            log.warning(
                "could not record a killed run's timeout: %s", exc, extra={"stepId": ids[1]}
            )
            return
        log.info(
            "run killed at its hard time limit: %s",
            transition.code,
            extra={"sessionId": ids[0], "stepId": ids[1], "agentId": ids[2]},
        )


class SoftLimitWindow:
    """Where Celery's soft time limit may interrupt a run: inside its agent only.

    In a prefork pool process the soft limit arrives as SIGUSR1, and billiard's handler raises
    ``SoftTimeLimitExceeded`` wherever the process is: in the claim, or while the outcome is
    being recorded. Within ``with SoftLimitWindow() as window`` (a run's whole handling) SIGUSR1
    is this window's: inside ``window.agent()`` it raises ``SoftTimeLimitExceeded`` as billiard's
    would (``fired``); elsewhere it is only noted (``passed``), so a limit that passed during the
    claim stops the run before its agent starts, and one passing while the outcome is recorded
    lets the recording finish. Where billiard's handler is not installed (threads and solo
    pools, tests) it changes nothing and ``enforced`` is False: no soft limit will come.
    """

    def __init__(self) -> None:
        self.enforced = False
        self.passed = False
        self.fired = False
        self._inside = False
        self._previous: Any = None

    def __enter__(self) -> SoftLimitWindow:
        usr1 = getattr(signal, "SIGUSR1", None)
        main = threading.current_thread() is threading.main_thread()
        if usr1 is not None and main and signal.getsignal(usr1) is soft_timeout_sighandler:
            self._previous = signal.signal(usr1, self._on_signal)
            self.enforced = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.enforced:
            signal.signal(signal.SIGUSR1, self._previous)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.passed = True
        if self._inside:
            self._inside, self.fired = False, True
            raise SoftTimeLimitExceeded()

    @contextmanager
    def agent(self) -> Iterator[None]:
        """Run the agent here: the soft limit raises inside (at once if it passed already)."""
        if self.passed:
            self.fired = True
            raise SoftTimeLimitExceeded()
        self._inside = True
        try:
            yield
        finally:
            self._inside = False
