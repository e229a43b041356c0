"""kombu's Redis transport, kept consuming while Redis refuses writes.

A Redis out of memory (``noeviction``) or unable to persist ("MISCONF") refuses every write. For
kombu's stock transport that is fatal to a Celery worker: under MISCONF its BRPOP is refused (a
ResponseError, which Celery does not retry), and under either an acknowledgement's ZREM/HDEL
pipeline is refused; the worker stops with "Unrecoverable error". Here, a refusal:

- of BRPOP (or of recording a delivered message as unacknowledged): the channel stops polling
  for ``PAUSE_S`` and tries again. A message popped but not recorded is not run; its step's
  deadline brings it back through the reconciler (orchestrator/engine/recovery.py).
- of an acknowledgement: the message is forgotten here and stays in kombu's unacked hash;
  kombu restores it after the visibility timeout, and its claim then finds the step finished.

Running steps go on: they retry their own store writes (workers/store_retry.py). Selected by
``broker_transport`` (workers/celery_app.py) for ``redis://``, ``rediss://`` and
``sentinel://`` URLs; a ``unix://`` URL keeps kombu's own transport (kombu picks it from the
URL's ``redis+socket`` scheme).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.transport.virtual import Empty

from orchestrator.store.errors import refused_write

log = logging.getLogger(__name__)

PAUSE_S = 1.0  # how long a channel waits after a refused BRPOP before polling again
TRANSPORT = "workers.broker_transport:Transport"
SENTINEL_TRANSPORT = "workers.broker_transport:SentinelTransport"


class RefusalTolerantQoS(kombu_redis.QoS):
    """Acknowledgements that survive a Redis refusing writes."""

    def ack(self, delivery_tag: Any) -> None:
        try:
            super().ack(delivery_tag)
        except redis.ResponseError as exc:
            refused = refused_write(exc)
            if refused is None:
                raise
            log.warning(
                "could not acknowledge a message (%s); kombu redelivers it after the visibility "
                "timeout and its claim finds the step finished",
                refused.code,
            )
            virtual.QoS.ack(self, delivery_tag)  # forget it here; Redis keeps it unacked


class RefusalTolerance:
    """Mixed into kombu's Redis channels: a refused BRPOP pauses polling instead of raising."""

    QoS = RefusalTolerantQoS
    _paused_until_s = 0.0

    def _brpop_start(self, timeout: Any = None) -> None:
        if time.monotonic() < self._paused_until_s:
            return  # polled again on a later tick of the event loop
        super()._brpop_start(timeout)  # type: ignore[misc]

    def _brpop_read(self, **options: Any) -> Any:
        try:
            return super()._brpop_read(**options)  # type: ignore[misc]
        except redis.ResponseError as exc:
            refused = refused_write(exc)
            if refused is None:
                raise
            log.warning(
                "Redis refuses writes (%s): not taking messages for %g s", refused.code, PAUSE_S
            )
            self._paused_until_s = time.monotonic() + PAUSE_S
            raise Empty() from exc


class Channel(RefusalTolerance, kombu_redis.Channel):
    pass


class SentinelChannel(RefusalTolerance, kombu_redis.SentinelChannel):
    pass


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


def transport_for(url: str) -> str | None:
    """The ``broker_transport`` for a Redis URL (see the module docstring), or None to let
    kombu choose from the URL."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("redis", "rediss"):
        return TRANSPORT
    if scheme == "sentinel":
        return SENTINEL_TRANSPORT
    return None
