"""Calls the Lua scripts of one client, with the log entries a call writes sent in the same
round trip, for the script to write when it did what they say. Shared by the session store and
its operator-input part (composition)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from orchestrator.core.logentry import LogEntry
from orchestrator.store.logbook import Logbook
from orchestrator.store.scripts import Scripts

LOGGING_SCRIPTS = frozenset(
    {
        "claim_step",
        "complete_step",
        "fail_step",
        "requeue_step",
        "cancel_session",
        "await_input",
        "provide_input",
    }
)
"""The scripts that take log entries as their last argument (lua/_logs.lua)."""


class ScriptRunner:
    def __init__(self, client: redis.Redis, logbook: Logbook) -> None:
        self._client = client
        self._logbook = logbook
        self.scripts = Scripts(client)

    def __call__(
        self,
        script: str,
        keys: list[str],
        args: list[Any],
        logs: Sequence[LogEntry] = (),
        now_ms: int = 0,
    ) -> Any:
        """The script's reply. A script that logs (LOGGING_SCRIPTS) gets ``logs`` as its last
        argument and writes them itself, only when it answers "ok" (lua/_logs.lua): a refused
        call (a late completion, a claim of a leased step) logs nothing, and a Redis refusing
        writes records the change and its entries together or not at all, in one round trip.

        Raises:
            ValueError: ``logs`` given to a script that does not log.
        """
        if script in LOGGING_SCRIPTS:
            args = [*args, self._logbook.payload(logs, now_ms)]
        elif logs:
            raise ValueError(f"{script}.lua writes no log entries; it was given {len(logs)}")
        return self.scripts[script](keys=keys, args=args)
