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

    def queue(self, pipe: Any) -> None:
        """Queue a fold in ``pipe`` before its reads, to fold in the same round trip; execute it
        with ``raise_on_error=False`` and pass the fold's reply to ``settled``."""
        pipe.evalsha(self._script.sha, 0, self._prefix)

    def settled(self, reply: Any) -> bool:
        """Whether the reads queued after the fold can be used: False when Redis did not know
        the script (after a restart or SCRIPT FLUSH), which is loaded now: read again. A fold
        that Redis refused to write is logged and the reads stand, as in ``before_read``."""
        if isinstance(reply, NoScriptError):
            self._script.registered_client.script_load(self._script.script)
            return False
        if isinstance(reply, Exception):
            log.warning("metrics read without folding %s: %s", "pending facts", reply)
        return True
