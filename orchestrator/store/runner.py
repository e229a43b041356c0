"""Calls the Lua scripts of one client, with the log entries a call writes sent in the same
round trip. Shared by the session store and its operator-input part (composition)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.exceptions import NoScriptError

from orchestrator.core.logentry import LogEntry
from orchestrator.store.logbook import Logbook
from orchestrator.store.scripts import Scripts


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
        """The script's reply. With ``logs``, EVALSHA goes straight into a pipeline with the
        entries: redis-py's Script in a pipeline asks SCRIPT EXISTS first, one more round trip
        per call. The script is loaded only if Redis lacks it."""
        registered = self.scripts[script]
        if not logs:
            return registered(keys=keys, args=args)
        pipe = self._client.pipeline(transaction=False)
        pipe.evalsha(registered.sha, len(keys), *keys, *args)
        for entry in logs:
            self._logbook.append(pipe, entry, now_ms)
        replies = pipe.execute(raise_on_error=False)
        if isinstance(replies[0], NoScriptError):
            return registered(keys=keys, args=args)  # loads it; the log entries are written
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies[0]
