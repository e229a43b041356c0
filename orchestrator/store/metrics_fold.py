"""Folds the metric facts the lifecycle scripts append into the counters they stand for.

A script that records a step's outcome appends a fact (one RPUSH) instead of writing some
thirty counters, and add_run.lua appends the run's CPU, wall time and peak RSS the same way;
lua/_slots.lua ``fold_metrics`` adds the pending facts with one HINCRBY per distinct field, when
200 have gathered and before every read. Every reader of ``Keys.step_counts``,
``Keys.step_durations``, the agents' metrics hashes and the cost counters runs a fold first, so
what it reads includes every outcome recorded before the read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis
from redis.exceptions import NoScriptError

from orchestrator.core.errors.base import StoreNotWritableError, StoreOutOfMemoryError
from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.scripts import Scripts

log = logging.getLogger(__name__)


@translates_redis_errors
class MetricsFold:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._script = Scripts.one(client, "fold_metrics")
        self._prefix = keys.prefix

    def fold(self) -> int:
        """Fold every pending fact; returns how many there were.

        Raises:
            StoreOutOfMemoryError, StoreNotWritableError: Redis refuses writes (and facts are
                pending: an empty fold writes nothing); ``before_read`` reads on regardless.
        """
        return int(self._script(keys=[], args=[self._prefix]))

    def before_read(self) -> None:
        """Fold before a read; when Redis refuses writes (out of memory, a failing disk), the
        read goes on without the facts still pending (at most 199 outcomes), as reads must
        keep working then."""
        try:
            self.fold()
        except (StoreOutOfMemoryError, StoreNotWritableError) as exc:
            log.warning("metrics read without folding %s: %s", "pending facts", exc)

    def read(self, client: redis.Redis, queue_reads: Callable[[Any], None]) -> list[Any]:
        """The replies of the reads ``queue_reads`` adds to a pipeline, after a fold queued
        first in the same pipeline: one round trip. When Redis did not know the script (after a
        restart or SCRIPT FLUSH) it is loaded and the whole read made again; a fold that Redis
        refused to write is logged and the reads stand, as in ``before_read``."""
        while True:
            pipe = client.pipeline(transaction=False)
            pipe.evalsha(self._script.sha, 0, self._prefix)
            queue_reads(pipe)
            fold, *replies = pipe.execute(raise_on_error=False)
            if isinstance(fold, NoScriptError):
                self._script.registered_client.script_load(self._script.script)
                continue
            if isinstance(fold, Exception):
                log.warning("metrics read without folding %s: %s", "pending facts", fold)
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return replies
