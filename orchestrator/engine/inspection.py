"""Flower-compatible inspection: steps as Celery tasks and worker processes in the shapes of
Flower's REST API (GET /api/tasks, /api/task/info/<id>, /api/workers), so tools written for Flower
work against us. Flower keeps tasks in memory and forgets them; these come from the session
records in Redis, newest session first, for as long as sessions are retained.

The mapping functions are pure; ``Inspection`` reads the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from orchestrator.core.dispatch import RUN_STEP_TASK
from orchestrator.core.errors import SessionNotFoundError, TaskNotFoundError
from orchestrator.core.models import SessionSnapshot, StepState
from orchestrator.engine.facade import Engine
from orchestrator.store.workers import WorkerRegistry

RESULT_CHARS = 2000  # Flower shows results as (repr) text; long ones are cut
SESSIONS_PER_PAGE = 20
MAX_SESSIONS_SCANNED = 500

# Step statuses as Celery task states.
CELERY_STATES = {
    "pending": "PENDING",
    "queued": "RECEIVED",
    "running": "STARTED",
    "waiting_for_input": "PENDING",
    "completed": "SUCCESS",
    "failed": "FAILURE",
    "cancelled": "REVOKED",
    "skipped": "REVOKED",
}
SORT_KEYS = ("name", "state", "received", "started")


def epoch_s(iso: str | None) -> float | None:
    """An API timestamp as Flower's epoch seconds."""
    return datetime.fromisoformat(iso).timestamp() if iso else None


def split_task_id(task_id: str) -> tuple[str, str]:
    """A job id ``<session id>.<step id>`` (session ids hold no dots). Raises TaskNotFoundError."""
    session_id, dot, step_id = task_id.partition(".")
    if not dot or not session_id or not step_id:
        raise TaskNotFoundError(task_id)
    return session_id, step_id


def task_document(
    snapshot: SessionSnapshot, step: StepState, workers_by_agent: Mapping[str, str]
) -> dict[str, Any]:
    """One step as Flower's task dict, plus the session, step and agent ids."""
    state = CELERY_STATES.get(step.status, "PENDING")
    output = snapshot.results.get(step.job_id)
    error = next((e for e in reversed(snapshot.errors) if e.step_id == step.step_id), None)
    started, finished = epoch_s(step.started_at), epoch_s(step.finished_at)
    received = epoch_s(step.queued_at)
    return {
        "uuid": step.job_id,
        "name": RUN_STEP_TASK,
        "state": state,
        "received": received,
        "sent": received,
        "started": started,
        "succeeded": finished if state == "SUCCESS" else None,
        "failed": finished if state == "FAILURE" else None,
        "revoked": finished if state == "REVOKED" else None,
        "retried": None,
        "timestamp": finished or started or received,
        "runtime": round(finished - started, 6) if started and finished else None,
        "args": json.dumps([snapshot.session_id, step.step_id, step.agent_id]),
        "kwargs": "{}",
        "result": _result_text(output) if state == "SUCCESS" else None,
        "exception": f"{error.error_type}: {error.message}" if error else step.error,
        "traceback": None,
        "retries": max(step.attempts - 1, 0),
        "worker": workers_by_agent.get(step.agent_id or ""),
        "routing_key": step.queue or None,
        "root_id": snapshot.session_id,
        "parent_id": f"{snapshot.session_id}.{step.parent_id}" if step.parent_id else None,
        "eta": None,
        "expires": None,
        "sessionId": snapshot.session_id,
        "stepId": step.step_id,
        "agentId": step.agent_id,
        "status": step.status,
    }


def _sort_value(doc: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    """Sort by ``key`` with missing values last (None never compares with numbers)."""
    value = doc.get(key)
    return (value is None, value if value is not None else 0)


def _result_text(output: Any) -> str:
    text = json.dumps(output, ensure_ascii=False)
    return text if len(text) <= RESULT_CHARS else text[: RESULT_CHARS - 1] + "…"


def worker_document(worker: Mapping[str, Any]) -> dict[str, Any]:
    """One worker as Flower's /api/workers entry (no Celery inspect broadcast: from its
    heartbeat record), plus its agents and status."""
    queues = [
        {
            "name": name,
            "exchange": {"name": name, "type": "direct", "durable": True},
            "routing_key": name,
            "durable": True,
            "exclusive": False,
            "auto_delete": False,
            "no_ack": False,
        }
        for name in worker.get("queues", [])
    ]
    return {
        "active_queues": queues,
        "registered": worker.get("registered", []),
        "stats": {
            "pid": worker.get("pid"),
            "hostname": worker.get("hostname", worker["name"]),
            "pool": {
                "max-concurrency": worker.get("concurrency"),
                "implementation": worker.get("pool"),
            },
            "prefetch_count": worker.get("concurrency"),
        },
        "timestamp": epoch_s(worker.get("lastHeartbeat")),
        "lastHeartbeat": worker.get("lastHeartbeat"),
        "alive": worker["status"] == "online",
        "status": worker["status"],
        "agents": worker.get("agents", []),
        "remote": worker.get("remote", False),
    }


class Inspection:
    def __init__(self, engine: Engine, workers: WorkerRegistry) -> None:
        self.engine = engine
        self.workers = workers

    def worker_documents(self) -> dict[str, dict[str, Any]]:
        return {w["name"]: worker_document(w) for w in self.workers.list(self.engine.now_ms())}

    def task(self, task_id: str) -> dict[str, Any]:
        """Raises TaskNotFoundError."""
        session_id, step_id = split_task_id(task_id)
        try:
            snapshot = self.engine.snapshot(session_id)
        except SessionNotFoundError as exc:
            raise TaskNotFoundError(task_id) from exc
        if step_id not in snapshot.steps:
            raise TaskNotFoundError(task_id)
        return task_document(snapshot, snapshot.steps[step_id], self._workers_by_agent())

    def tasks(
        self,
        *,
        limit: int,
        offset: int = 0,
        state: str | None = None,
        worker: str | None = None,
        taskname: str | None = None,
        sort_by: str | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Steps as tasks, newest session first (or sorted by ``sort_by``; a leading ``-``
        reverses), filtered like Flower's, at most ``limit`` after ``offset``."""
        if taskname not in (None, "All", RUN_STEP_TASK):
            return []
        wanted = None if state in (None, "All") else state
        worker = None if worker in (None, "All") else worker
        found = (
            doc
            for doc in self._all_tasks()
            if (wanted is None or doc["state"] == wanted)
            and (worker is None or doc["worker"] == worker)
        )
        if sort_by:
            key = sort_by.lstrip("-")
            docs = sorted(found, key=lambda doc: _sort_value(doc, key))
            if sort_by.startswith("-"):
                docs.reverse()
            chosen = docs[offset : offset + limit]
        else:
            chosen = []
            for index, doc in enumerate(found):
                if index >= offset + limit:
                    break
                if index >= offset:
                    chosen.append(doc)
        return [(doc["uuid"], doc) for doc in chosen]

    def _all_tasks(self) -> Iterator[dict[str, Any]]:
        by_agent = self._workers_by_agent()
        cursor, scanned = None, 0
        while scanned < MAX_SESSIONS_SCANNED:
            page, cursor = self.engine.sessions.index.list_page(
                user_id=None, status=None, limit=SESSIONS_PER_PAGE, cursor=cursor
            )
            for row in page:
                scanned += 1
                try:
                    snapshot = self.engine.snapshot(row["sessionId"])
                except SessionNotFoundError:
                    continue
                for step in snapshot.steps.values():
                    yield task_document(snapshot, step, by_agent)
            if cursor is None:
                return

    def _workers_by_agent(self) -> dict[str, str]:
        agents = self.engine.registry.list(self.engine.now_ms())
        return {agent.id: agent.worker for agent in agents if agent.worker}
