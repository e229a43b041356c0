"""The step task: a thin adapter from a Celery message to the worker runtime."""

from __future__ import annotations

import logging
import re

from celery import Celery, Task

from workers.celery_app import RUN_STEP_TASK

log = logging.getLogger(__name__)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def valid_payload(session_id: object, step_id: object, agent_id: object) -> bool:
    """A message from the queue is untrusted: check its shape before anything uses it."""
    return (
        isinstance(session_id, str)
        and bool(_ID.match(session_id))
        and isinstance(step_id, str)
        and bool(_ID.match(step_id))
        and (agent_id is None or (isinstance(agent_id, str) and bool(_ID.match(agent_id))))
    )


def register_tasks(app: Celery) -> None:
    @app.task(
        name=RUN_STEP_TASK,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        max_retries=None,
    )
    def run_step(self: Task, session_id: str, step_id: str, agent_id: str | None = None) -> None:
        if not valid_payload(session_id, step_id, agent_id):
            log.error("dropping malformed step message %r", self.request.id)
            return
        from workers.runtime import runtime_for

        skip = runtime_for(app).execute(session_id, step_id, agent_id)
        if skip is not None and skip.retry_after_s is not None:
            # Another run holds a live lease: come back when it would have expired.
            raise self.retry(countdown=skip.retry_after_s)
