"""What sessions spent, as the API shows it (orchestrator/core/costs.py builds the views)."""

from __future__ import annotations

import json

from orchestrator.core.costs import PriceSource, SessionCost, session_cost
from orchestrator.core.errors import SessionNotFoundError
from orchestrator.core.prices import PriceTable
from orchestrator.store.sessions import SessionStore


class Costs:
    def __init__(self, sessions: SessionStore, prices: PriceTable) -> None:
        self._sessions = sessions
        self._prices = PriceSource(source=prices.source, as_of=prices.as_of)

    def session(self, session_id: str) -> SessionCost:
        """The session's cost with a row per step, in plan order. SessionNotFoundError (404)."""
        record = self._sessions.read(session_id)
        if record is None:
            raise SessionNotFoundError(session_id)
        order = json.loads(record.fields.get("jobOrder", "[]"))
        return session_cost(session_id, record.costs, order, self._prices)
