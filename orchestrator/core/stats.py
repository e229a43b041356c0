"""Session statistics (pure): what GET /api/orchestrator/sessions/<id>/stats returns.

errorRate is the share of the session's log entries at level error or critical (0 when there are
none), as the spec's logger statistics define it. Step durations come from the record: finish
minus start of every completed step.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from orchestrator.core.logentry import LEVELS, SOURCES
from orchestrator.core.models import SessionSnapshot


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (_parse(end) - _parse(start)).total_seconds()


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def session_stats(snapshot: SessionSnapshot, entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    entries = list(entries)
    by_level = Counter(e["level"] for e in entries)
    by_source = Counter(e["source"] for e in entries)
    errors = by_level["error"] + by_level["critical"]
    durations = sorted(
        d
        for s in snapshot.steps.values()
        if s.status == "completed"
        for d in [_seconds(s.started_at, s.finished_at)]
        if d is not None
    )
    agents: dict[str, dict[str, int]] = {}
    for state in snapshot.steps.values():
        if state.agent_id:
            counts = agents.setdefault(
                state.agent_id, {"steps": 0, "completed": 0, "failed": 0, "logEntries": 0}
            )
            counts["steps"] += 1
            if state.status in ("completed", "failed"):
                counts[state.status] += 1
    for entry in entries:
        if entry.get("agentId") in agents:
            agents[entry["agentId"]]["logEntries"] += 1
    return {
        "sessionId": snapshot.session_id,
        "status": snapshot.status,
        "totalEntries": len(entries),
        "byLevel": {level: by_level[level] for level in LEVELS},
        "bySource": {source: by_source[source] for source in SOURCES},
        "errorRate": errors / len(entries) if entries else 0.0,
        "stepDurations": {
            "count": len(durations),
            "p50": percentile(durations, 0.5),
            "p95": percentile(durations, 0.95),
            "max": durations[-1] if durations else None,
        },
        "agents": agents,
    }
