"""Publishes step messages with Celery: one pooled producer connection for a batch of released
steps (a group), deterministic task ids, bounded publish retries. A broker that does not take a
message is a DispatchError; one that refuses it because Redis refuses writes (out of memory,
MISCONF: the broker is the store's Redis) raises the store's own error for that."""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery
from kombu.exceptions import OperationalError

from orchestrator import tracing
from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.dispatch import StepDispatch
from orchestrator.core.errors import DispatchError
from orchestrator.store.errors import refused_write_in
from workers.celery_app import RUN_STEP_TASK
from workers.etas import eta_after


class CeleryDispatcher:
    """Publishes with ``app``; a delayed message's ETA is on ``clock`` (the process's clock,
    Redis's time: workers/etas.py)."""

    def __init__(self, app: Celery, clock: Clock = SYSTEM_CLOCK) -> None:
        self.app = app
        self.clock = clock

    def dispatch(self, dispatches: Sequence[StepDispatch], countdown_s: float = 0.0) -> None:
        if not dispatches:
            return
        headers = tracing.carrier() or None  # the sender's span (W3C), when traced
        eta = eta_after(self.clock, countdown_s) if countdown_s else None
        try:
            with self.app.producer_or_acquire() as producer:
                for item in dispatches:
                    self.app.send_task(
                        RUN_STEP_TASK,
                        args=[item.session_id, item.step_id, item.agent_id],
                        task_id=item.job_id,
                        queue=item.queue,
                        routing_key=item.queue,
                        eta=eta,
                        producer=producer,
                        headers=headers,
                    )
        except (OperationalError, ConnectionError, OSError) as exc:
            refused = refused_write_in(exc)
            if refused is not None:
                raise refused from exc
            raise DispatchError(
                f"the broker did not accept {len(dispatches)} step message(s): {exc}. "
                "Check that Redis is reachable at MEOWSTIK_REDIS_URL and retry.",
                details={"jobIds": [d.job_id for d in dispatches]},
            ) from exc

    def revoke(self, job_ids: Sequence[str]) -> None:
        """Revoke by task id and terminate the pool process running it (prefork; a threads pool
        cannot be interrupted, so there the record's refusal of the result is what counts)."""
        if not job_ids:
            return
        try:
            self.app.control.revoke(list(job_ids), terminate=True, signal="SIGTERM")
        except (OperationalError, ConnectionError, OSError) as exc:
            raise DispatchError(
                f"the broker did not take the revoke of {len(job_ids)} step(s): {exc}",
                details={"jobIds": list(job_ids)},
            ) from exc
