"""Folds the metric facts the lifecycle scripts append into the counters they stand for.

A script that records a step's outcome appends a fact (one RPUSH) instead of writing some
thirty counters; lua/_slots.lua ``fold_metrics`` adds the pending facts with one HINCRBY per
distinct field, when 200 have gathered and before every read. Every reader of
``Keys.step_counts``, ``Keys.step_durations`` and the agents' metrics hashes calls this first,
so what it reads includes every outcome recorded before the read.
"""

from __future__ import annotations

import logging

import redis

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
