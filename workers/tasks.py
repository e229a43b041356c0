"""The step task: a thin adapter from a Celery message to the worker runtime."""

from __future__ import annotations

import logging
import re
from typing import cast

from celery import Celery, Task

from workers.celery_app import RUN_STEP_TASK
from workers.tracing import note_skip, step_span

log = logging.getLogger(__name__)
# fullmatch, not ^...$: "$" also matches before a trailing newline
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _is_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def valid_payload(session_id: object, step_id: object, agent_id: object) -> bool:
    """A message from the queue is untrusted: check its shape before anything uses it.

    Ids are 1-128 ASCII letters, digits, ``_``, ``.`` and ``-``, starting with a letter or digit
    (so no path, key-separator, hash-tag or control characters); ``agent_id`` may be None.
    """
    return _is_id(session_id) and _is_id(step_id) and (agent_id is None or _is_id(agent_id))


def register_tasks(app: Celery) -> None:
    @app.task(
        name=RUN_STEP_TASK,
        # this app's own task: a shared one would be registered in every later app of the
        # process too, and there run with the first app's configuration
        shared=False,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        max_retries=None,
        # a run token per delivery, and Celery's time limits from the step's timeout
        Request="workers.time_limits:StepRequest",
    )
    def run_step(
        self: Task,
        session_id: object = None,
        step_id: object = None,
        agent_id: object = None,
        *extra_args: object,
        **extra_kwargs: object,
    ) -> None:
        # Any shape of arguments reaches this check (missing, extra or unknown ones too), so a
        # malformed message is dropped here, acknowledged, before anything reads Redis.
        if extra_args or extra_kwargs or not valid_payload(session_id, step_id, agent_id):
            log.error("dropping malformed step message %r", self.request.id)
            return
        from workers.etas import eta_after
        from workers.runtime import runtime_for
        from workers.time_limits import RunLimits

        sid, step, agent = cast(str, session_id), cast(str, step_id), cast(str | None, agent_id)
        runtime = runtime_for(app)
        with step_span(runtime, self.request, sid, step, agent):  # when traced: the run's span
            skip = runtime.execute(sid, step, agent, RunLimits.of(self.request))
            note_skip(skip)
        if skip is not None and skip.retry_after_s is not None:
            # Another run holds a live lease: come back when it would have expired (an ETA on
            # Redis's clock, as the lease is: workers/etas.py).
            raise self.retry(eta=eta_after(runtime.context.clock, skip.retry_after_s))
