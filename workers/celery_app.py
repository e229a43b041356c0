"""The Celery app and its configuration, built from Settings.

Choices (see docs/architecture.md): JSON only (a message of any other content type, pickle
above all, is refused before its body is decoded and discarded, never redelivered); TLS options
of a ``rediss://`` URL given to kombu explicitly (``broker_use_ssl``), verified by default as
redis-py is given them; no result backend (our Redis record is the truth, and without a backend
a publish never blocks on a backend reconnect); acks_late together with reject_on_worker_lost so
a killed child's message comes back; prefetch 1 so a busy worker holds no message an idle one
could run; publish retries bounded so the API answers 503 quickly; an error reply from the
broker (``broker_channel_error_retry``) makes the consumer reconnect rather than the worker exit
(a master short of ``min-replicas-to-write`` replicas answers NOREPLICAS to every write, as a
just-promoted one does after a Sentinel failover until a replica attaches; kombu's unacked
restore, run on every connect, writes). kombu puts every key and pub/sub channel of the broker
under ``Keys.broker("")`` (``global_keyprefix``, from MEOWSTIK_KEY_PREFIX), so two deployments
on one Redis database share no queue. kombu's Redis transport is the one of
workers/broker_transport.py, which keeps a worker consuming while Redis refuses writes (out of
memory, MISCONF) instead of stopping it.
"""

from __future__ import annotations

from celery import Celery

from orchestrator.core.dispatch import RUN_STEP_TASK
from orchestrator.settings import Settings
from orchestrator.store.connection import broker_transport_options, broker_url, broker_use_ssl
from orchestrator.store.keys import Keys
from workers.broker_transport import transport_for

__all__ = ["RUN_STEP_TASK", "create_celery_app"]


def create_celery_app(settings: Settings) -> Celery:
    url = settings.effective_redis_url
    app = Celery("meowstik", broker=broker_url(url), set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_connection_retry_on_startup=True,
        broker_channel_error_retry=True,
        broker_use_ssl=broker_use_ssl(url),
        broker_transport=transport_for(url),
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "unacked_restore_interval": settings.unacked_restore_interval_s,
            "unacked_restore_throttle": settings.unacked_restore_throttle,
            "global_keyprefix": Keys(settings.key_prefix).broker(""),
            **broker_transport_options(url, settings.redis_sentinel_master),
        },
        task_create_missing_queues=True,
        task_default_queue="meowstik.default",
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": settings.publish_max_retries,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        broker_pool_limit=10,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_enable_remote_control=settings.worker_remote_control,
    )
    app.conf.meowstik_settings = settings
    from workers.tasks import register_tasks

    register_tasks(app)
    return app
