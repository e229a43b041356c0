"""A bare Celery app with one no-op task: the raw-Celery baseline `make bench` compares against.

Configured like the product's worker (workers/celery_app.py) where it matters for speed: JSON
only, acks_late with reject_on_worker_lost, prefetch 1, broker pool 10, root logger left alone.
Unlike the product it has a result backend (the same Redis), because Celery needs one for
chords and for a caller to learn that work finished. Its own queue keeps it apart from a
product worker on the same Redis.

The worker (`celery -A benchmarks.raw_tasks worker`) reads the broker URL from
RAW_CELERY_BROKER_URL; the benchmark's client builds its own app with create_app(url).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from celery import Celery
from celery.signals import task_received
from celery.worker.control import control_command

BROKER_ENV = "RAW_CELERY_BROKER_URL"
QUEUE = "raw_celery.bench"
NOOP_TASK = "raw_celery.noop"
SIZES_COMMAND = "raw_celery_message_sizes"
RESULT_EXPIRES_S = 3600  # long enough for any run, short enough not to pile up across runs


def noop_value(previous: int | list | None = None) -> int:
    """The no-op's trivial, checkable work: a chain hop adds one to what it receives, a fan-in
    (a chord body, or a group member after a group) counts the results it receives."""
    if isinstance(previous, list):
        return len(previous)
    return (previous or 0) + 1


def create_app(broker_url: str) -> Celery:
    app = Celery("raw_celery", broker=broker_url, backend=broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_accept_content=["json"],
        result_backend=broker_url,
        result_expires=RESULT_EXPIRES_S,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_pool_limit=10,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        task_default_queue=QUEUE,
        task_create_missing_queues=True,
    )

    # one module-level callable for every app, so two apps in one process (a benchmark
    # client next to a test's) register the same function under the task name
    app.task(name=NOOP_TASK)(noop_value)
    return app


class _MessageSizes:
    """Body bytes of the task messages this worker received, read and reset by a remote-control
    command, so message sizes are measured without touching Redis during a run (two integer
    additions per message in the worker's main process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.body_bytes = 0

    def record(self, sender: Any = None, request: Any = None, **_: Any) -> None:
        body = getattr(request, "body", None)
        if body is None:
            return
        with self._lock:
            self.count += 1
            self.body_bytes += len(body)

    def take(self) -> dict[str, int]:
        with self._lock:
            taken = {"count": self.count, "bodyBytes": self.body_bytes}
            self.count = self.body_bytes = 0
        return taken


MESSAGE_SIZES = _MessageSizes()
task_received.connect(MESSAGE_SIZES.record, weak=False)


@control_command(name=SIZES_COMMAND)
def message_sizes(state: Any) -> dict[str, int]:
    """Count and total body bytes of messages received since the last call (then reset)."""
    return MESSAGE_SIZES.take()


def __getattr__(name: str) -> Celery:
    """`app` for `celery -A benchmarks.raw_tasks`, built on first use so that importing this
    module for create_app() needs no environment."""
    if name != "app":
        raise AttributeError(name)
    try:
        url = os.environ[BROKER_ENV]
    except KeyError:
        raise RuntimeError(f"set {BROKER_ENV} to the Redis URL of the raw-Celery worker") from None
    built = create_app(url)
    globals()["app"] = built
    return built
