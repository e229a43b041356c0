"""Publishes step messages with Celery: one pooled producer connection for a batch of released
steps (a group), deterministic task ids, bounded publish retries."""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery
from kombu.exceptions import OperationalError

from orchestrator import tracing
from orchestrator.core.dispatch import StepDispatch
from orchestrator.core.errors import DispatchError
from workers.celery_app import RUN_STEP_TASK


class CeleryDispatcher:
    def __init__(self, app: Celery) -> None:
        self.app = app

    def dispatch(self, dispatches: Sequence[StepDispatch], countdown_s: float = 0.0) -> None:
        if not dispatches:
            return
        headers = tracing.carrier() or None  # the sender's span (W3C), when traced
        try:
            with self.app.producer_or_acquire() as producer:
                for item in dispatches:
                    self.app.send_task(
                        RUN_STEP_TASK,
                        args=[item.session_id, item.step_id, item.agent_id],
                        task_id=item.job_id,
                        queue=item.queue,
                        routing_key=item.queue,
                        countdown=countdown_s or None,
                        producer=producer,
                        headers=headers,
                    )
        except (OperationalError, ConnectionError, OSError) as exc:
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
