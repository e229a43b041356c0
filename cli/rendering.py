"""Plain-text renderings of API documents for the terminal: a session's step table (subtasks
under their parent), durations, and log lines."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any


def render_session(snapshot: dict[str, Any]) -> list[str]:
    """A headline, a table of the steps (id, status, agent, attempts, duration), then errors."""
    lines = [_headline(snapshot), ""]
    rows = [["STEP", "STATUS", "AGENT", "ATTEMPTS", "DURATION"]]
    for step_id, depth in _step_order(snapshot):
        state = snapshot["steps"][step_id]
        seconds = _seconds_between(state.get("startedAt"), state.get("finishedAt"))
        rows.append(
            [
                "  " * depth + step_id,
                step_status(state),
                state.get("agentId") or "-",
                str(state.get("attempts", 0)),
                format_duration(seconds) if seconds is not None else "-",
            ]
        )
    lines += render_table(rows)
    lines += ["", "errors:"] if snapshot.get("errors") else []
    for error in snapshot.get("errors", []):
        agent = f"{error['agentId']}, " if error.get("agentId") else ""
        lines.append(
            f"  {error['stepId']} ({agent}attempt {error.get('attempt', '?')}): "
            f"{error.get('errorType', 'error')}: {error['message']}"
        )
    return lines


def step_status(state: dict[str, Any]) -> str:
    """A step's status, with why a queued step has no agent yet: ``queued (waiting for
    capacity)``, or ``queued (waiting for an agent until <schedule deadline>)``."""
    status = str(state.get("status", "?"))
    waiting = state.get("waitingFor")
    if status != "queued" or not waiting:
        return status
    if waiting != "agent":
        return f"{status} (waiting for {waiting})"
    deadline = state.get("scheduleDeadline")
    return f"{status} (waiting for an agent{f' until {deadline}' if deadline else ''})"


def render_table(rows: list[list[str]]) -> list[str]:
    """Left-aligned columns two spaces apart, the first row a header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _headline(snapshot: dict[str, Any]) -> str:
    text = f"session {snapshot['sessionId']}: {snapshot['status']}"
    seconds = _seconds_between(snapshot.get("startTime"), snapshot.get("endTime"))
    if seconds is not None:
        text += f" in {format_duration(seconds)}"
    text += f", {snapshot.get('completedTasks', 0)}/{snapshot.get('totalTasks', 0)} steps completed"
    if snapshot.get("failedTasks"):
        text += f", {snapshot['failedTasks']} failed"
    return text


def plan_tree(steps: list[dict[str, Any]], depth: int = 0) -> Iterator[tuple[str, int]]:
    """(step id, nesting depth) of a plan's steps, each parent followed by its subtasks."""
    for step in steps:
        if "id" in step:
            yield step["id"], depth
            yield from plan_tree(step.get("subtasks") or [], depth + 1)


def _step_order(snapshot: dict[str, Any]) -> list[tuple[str, int]]:
    """Steps in plan order with subtasks under their parent, then any the plan does not list."""
    states = snapshot.get("steps", {})
    planned = [
        (s, d) for s, d in plan_tree(snapshot.get("plan", {}).get("steps", [])) if s in states
    ]
    listed = {s for s, _ in planned}
    return planned + [(s, 0) for s in states if s not in listed]


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except ValueError:
        return None


def format_duration(seconds: float) -> str:
    """``0.35s``, ``12.0s``, ``3m 07s``."""
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m {rest:02d}s"


def format_entry(entry: dict[str, Any]) -> str:
    """One line: time, level, source, [step agent], message, and the error if any."""
    scope = " ".join(part for part in (entry.get("taskId"), entry.get("agentId")) if part)
    text = f"{entry.get('timestamp', '')} {entry['level'].upper():<8} {entry['source']:<12} "
    text += (f"[{scope}] " if scope else "") + entry["message"]
    return text + (f"  error: {entry['error']}" if entry.get("error") else "")
