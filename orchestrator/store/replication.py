"""Writes that return only once replicas have them: Redis ``WAIT``, in this one place.

Redis replication is asynchronous: the master answers a write before any replica has it, and a
failover right then promotes a replica without it. ``WAIT <replicas> <timeout_ms>`` blocks until
that many replicas acknowledge every earlier write *of the same connection*, so it must follow
the write on the connection that made it, not on whichever one a pool hands out next (under
concurrent requests that would be another connection, whose writes may all be old). Inside
MULTI it does not block at all. Hence :class:`DurableWrites`: one round trip on one connection
carrying ``MULTI``, the queued commands, ``EXEC`` and ``WAIT``.

With ``replicas`` 0 (MEOWSTIK_REDIS_MIN_REPLICA_ACKS unset, the default for a plain Redis) it
is redis-py's transactional pipeline and no WAIT is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from redis.client import Pipeline

from orchestrator.core.errors import ReplicaAckTimeoutError
from orchestrator.settings import DEFAULT_MIN_REPLICA_ACKS, DEFAULT_REPLICA_WAIT_MS, Settings


@dataclass(frozen=True)
class ReplicaAcks:
    """How many replicas must confirm a durable write (0: none, no WAIT), and for how long to
    wait for them."""

    replicas: int = DEFAULT_MIN_REPLICA_ACKS
    timeout_ms: int = DEFAULT_REPLICA_WAIT_MS

    @classmethod
    def of(cls, settings: Settings) -> ReplicaAcks:
        return cls(settings.redis_min_replica_acks, settings.redis_replica_wait_ms)


class DurableWrites:
    """MULTI/EXEC transactions followed, when replicas are required, by WAIT on the same
    connection in the same round trip::

        pipe = durable.transaction()
        pipe.hset(...)
        durable.commit(pipe)  # ReplicaAckTimeoutError if too few replicas confirmed
    """

    def __init__(self, client: redis.Redis, acks: ReplicaAcks) -> None:
        self._client = client
        self.acks = acks

    def transaction(self) -> Pipeline:
        """A pipeline to queue the transaction's commands on (run them with :meth:`commit`)."""
        if not self.acks.replicas:
            return self._client.pipeline(transaction=True)
        # MULTI, EXEC and WAIT spelled out in a plain pipeline, so WAIT follows EXEC on its
        # connection; no reply callbacks: the queued commands answer QUEUED, not their values
        pipe = Pipeline(self._client.connection_pool, {}, transaction=False, shard_hint=None)
        pipe.execute_command("MULTI")
        return pipe

    def commit(self, pipe: Pipeline) -> None:
        """Run the transaction; with replicas required, wait for them.

        Raises:
            redis.ResponseError: Redis refused the transaction (nothing was written).
            ReplicaAckTimeoutError: it was written, but fewer replicas than required
                confirmed it within the timeout.
        """
        if not self.acks.replicas:
            pipe.execute()
            return
        pipe.execute_command("EXEC")
        pipe.execute_command("WAIT", self.acks.replicas, self.acks.timeout_ms)
        *_, applied, acknowledged = pipe.execute()
        _raise_first_error(applied)
        if int(acknowledged) < self.acks.replicas:
            raise ReplicaAckTimeoutError(
                self.acks.replicas, int(acknowledged), self.acks.timeout_ms
            )


def _raise_first_error(replies: Any) -> None:
    """EXEC's replies carry a failed command's error as a value: raise it."""
    for reply in replies or ():
        if isinstance(reply, Exception):
            raise reply
