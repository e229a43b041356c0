"""What sessions spent, in Redis: the counters ``record_call.lua`` keeps for every model call (as
it records the call, so each is counted once), and the CPU time, wall time and peak resident set
of each step run, added when the run ends (``add_run``). All counters are integers
(pico-dollars, tokens, microseconds, KiB), so sums are exact. ``Keys.costs`` is session-owned:
retention removes it with the session; ``Keys.cost_totals`` holds the all-time counters /metrics
exports.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.metrics_fold import MetricsFold
from orchestrator.store.scripts import Scripts, text
from orchestrator.store.turns import DEFAULT_HISTORY_DAYS, MS_PER_HOUR, hour_expires_at


@translates_redis_errors
class CostLedger:
    def __init__(
        self, client: redis.Redis, keys: Keys, *, history_days: int = DEFAULT_HISTORY_DAYS
    ) -> None:
        self._client, self._keys = client, keys
        self._scripts = Scripts(client)
        self._fold = MetricsFold(client, keys)
        self._history_days = history_days

    def add_run(
        self,
        session_id: str,
        step_id: str,
        agent_id: str,
        *,
        cpu_s: float,
        wall_s: float,
        peak_rss_kb: int | None = None,
        now_ms: int,
    ) -> None:
        """Count one step run's CPU time (of its worker process), wall time and peak resident
        set (add_run.lua: the session's counters, the all-time CPU, the hour's by user and
        agent). Not atomic with the run's outcome: a run whose process dies before this is not
        counted (its model calls are, as they were recorded)."""
        cpu_us, wall_ms = max(0, round(cpu_s * 1_000_000)), max(0, round(wall_s * 1000))
        hour = now_ms // MS_PER_HOUR
        k = self._keys
        self._scripts["add_run"](
            keys=[k.session(session_id)],
            args=[
                k.prefix,
                session_id,
                step_id,
                agent_id,
                cpu_us,
                wall_ms,
                "" if peak_rss_kb is None else peak_rss_kb,
                hour,
                hour_expires_at(hour, self._history_days),
            ],
        )

    def session(self, session_id: str) -> tuple[list[str], dict[str, int]] | None:
        """The session's step ids in plan order and its counters, in one round trip; None when
        there is no such session."""
        k = self._keys
        order, raw = self._fold.read(  # the runs' facts (add_run.lua) counted first
            self._client,
            lambda pipe: pipe.hget(k.session(session_id), "jobOrder").hgetall(k.costs(session_id)),
        )
        if order is None:
            return None
        counters = {text(field): int(value) for field, value in raw.items()}
        return json.loads(order), counters

    def counters(self, session_id: str) -> dict[str, int]:
        """The session's counters by field ({} when it spent nothing yet)."""
        self._fold.before_read()  # the runs' facts (add_run.lua) counted first
        raw = self._client.hgetall(self._keys.costs(session_id))
        return {text(field): int(value) for field, value in raw.items()}

    def totals(self) -> dict[str, int]:
        """The all-time counters by field."""
        self._fold.before_read()  # the runs' facts (add_run.lua) counted first
        raw = self._client.hgetall(self._keys.cost_totals)
        return {text(field): int(value) for field, value in raw.items()}

    def hours(self, first_hour: int, last_hour: int) -> list[dict[str, int]]:
        """The hourly counters of ``first_hour`` to ``last_hour`` (hours since the epoch,
        both included), in one pipeline; expired or empty hours are {}."""

        def reads(pipe: Any) -> None:
            for hour in range(first_hour, last_hour + 1):
                pipe.hgetall(self._keys.cost_hour(hour))

        replies = self._fold.read(self._client, reads)  # the runs' facts counted first
        return [{text(field): int(value) for field, value in raw.items()} for raw in replies]
