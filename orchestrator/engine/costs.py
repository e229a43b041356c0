"""What sessions spent, as the API shows it (orchestrator/core/costs.py builds the views)."""

from __future__ import annotations

from orchestrator.core.costs import (
    CostReport,
    PriceSource,
    SessionCost,
    cost_report,
    session_cost,
)
from orchestrator.core.errors import SessionNotFoundError
from orchestrator.core.logentry import iso_from_ms
from orchestrator.core.prices import PriceTable
from orchestrator.store.costs import CostLedger

MS_PER_HOUR = 3_600_000


class Costs:
    def __init__(self, ledger: CostLedger, prices: PriceTable, history_days: int) -> None:
        self._ledger = ledger
        self._prices = PriceSource(source=prices.source, as_of=prices.as_of)
        self.history_days = history_days

    def report(
        self, group_by: str, since_ms: int, until_ms: int, *, user: str | None
    ) -> CostReport:
        """Spending of the whole hours from ``since_ms``'s to ``until_ms``'s, grouped; ``user``
        limits it to that user's. Hours older than MEOWSTIK_COST_HISTORY_DAYS are gone: the
        report starts at the oldest kept hour."""
        oldest = until_ms // MS_PER_HOUR - self.history_days * 24
        first, last = max(since_ms // MS_PER_HOUR, oldest), until_ms // MS_PER_HOUR
        hours = self._ledger.hours(first, last) if first <= last else []
        since, until = iso_from_ms(first * MS_PER_HOUR), iso_from_ms((last + 1) * MS_PER_HOUR)
        return cost_report(hours, group_by, since or "", until or "", user)

    def session(self, session_id: str) -> SessionCost:
        """The session's cost with a row per step, in plan order. SessionNotFoundError (404)."""
        found = self._ledger.session(session_id)
        if found is None:
            raise SessionNotFoundError(session_id)
        order, counters = found
        return session_cost(session_id, counters, order, self._prices)
