"""Flower-compatible JSON endpoints (Flower's paths and shapes), so tools written for Flower's
REST API work against this API: workers, queue lengths, tasks, task info, task types, revoke,
healthcheck. Tasks are steps (task id = job id ``<session id>.<step id>``), kept in Redis with
their sessions instead of in memory."""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint, Response, jsonify, request
from pydantic import Field, StringConstraints

from api.body import query_args
from api.errors import ApiError
from api.metrics import known_queues
from api.routes.orchestrator import services
from orchestrator.core.dispatch import RUN_STEP_TASK
from orchestrator.core.models import RequestModel
from orchestrator.engine.inspection import SORT_KEYS, Inspection, split_task_id
from orchestrator.store.workers import WorkerRegistry

blueprint = Blueprint("flower", __name__)

MAX_TASKS = 1000
Name = Annotated[str, StringConstraints(max_length=200)]
SortBy = Annotated[str, StringConstraints(pattern=rf"^-?({'|'.join(SORT_KEYS)})$")]


class TaskQuery(RequestModel):
    """Query of GET /api/tasks, with Flower's parameter names."""

    limit: int = Field(default=100, ge=1, le=MAX_TASKS)
    offset: int = Field(default=0, ge=0)
    state: Name | None = None
    workername: Name | None = None
    taskname: Name | None = None
    sort_by: Annotated[str, StringConstraints(pattern=rf"^-?({'|'.join(SORT_KEYS)})$")] | None = (
        None
    )


class WorkerQuery(RequestModel):
    """Query of GET /api/workers. ``refresh`` is accepted for Flower's clients; the records are
    always current (every heartbeat writes them)."""

    refresh: bool = False
    status: bool = False
    workername: Name | None = None


def inspection() -> Inspection:
    found = services()
    return Inspection(found.engine, WorkerRegistry(found.client, found.engine.sessions.keys))


@blueprint.get("/api/workers")
def list_workers():
    query = query_args(WorkerQuery)
    workers = inspection().worker_documents()
    if query.workername is not None:
        if query.workername not in workers:
            raise ApiError(
                404,
                "worker_not_found",
                f"no worker named {query.workername!r}; GET /api/workers lists them",
                {"workername": query.workername},
            )
        workers = {query.workername: workers[query.workername]}
    if query.status:
        return jsonify({name: worker["alive"] for name, worker in workers.items()})
    return jsonify(workers)


def queue_table() -> list[tuple[str, int, list[str]]]:
    """(queue, waiting messages, online workers consuming it) for every queue an agent or a
    worker names, in one pipeline of LLENs."""
    found = services()
    agents = found.registry.list(found.engine.now_ms())
    names = set(known_queues(agents))
    consumers: dict[str, list[str]] = {}
    for worker_name, worker in inspection().worker_documents().items():
        for queue in worker["active_queues"]:
            names.add(queue["name"])
            if worker["alive"]:
                consumers.setdefault(queue["name"], []).append(worker_name)
    ordered = sorted(names)
    pipe = found.client.pipeline(transaction=False)
    for name in ordered:
        pipe.llen(name)
    depths = pipe.execute()
    return [
        (name, int(depth), sorted(consumers.get(name, [])))
        for name, depth in zip(ordered, depths, strict=True)
    ]


@blueprint.get("/api/queues/length")
def queue_lengths():
    rows = queue_table()
    return jsonify({"active_queues": [{"name": n, "messages": d} for n, d, _ in rows]})


@blueprint.get("/api/tasks")
def list_tasks():
    query = query_args(TaskQuery)
    tasks = inspection().tasks(
        limit=query.limit,
        offset=query.offset,
        state=query.state,
        worker=query.workername,
        taskname=query.taskname,
        sort_by=query.sort_by,
    )
    return jsonify(dict(tasks))


@blueprint.get("/api/task/info/<task_id>")
def task_info(task_id: str):
    return jsonify(inspection().task(task_id))


@blueprint.get("/api/task/types")
def task_types():
    return jsonify({"task-types": [RUN_STEP_TASK]})


@blueprint.post("/api/task/revoke/<task_id>")
def revoke_task(task_id: str):
    """Revoke one step: it fails as revoked and the session's failure policy applies;
    ``?terminate=true`` also stops a running copy. Revoke a whole session with
    POST /api/orchestrator/sessions/<id>/cancel."""
    terminate = request.args.get("terminate", "false").lower()
    if terminate not in ("true", "false", "1", "0"):
        raise ApiError(
            422,
            "validation_error",
            f"terminate must be true or false, not {terminate!r}",
            {"errors": [{"location": "query.terminate", "message": "expected true or false"}]},
        )
    session_id, step_id = split_task_id(task_id)
    services().engine.revoke_step(session_id, step_id, terminate=terminate in ("true", "1"))
    return jsonify({"message": f"Revoked '{task_id}'"})


@blueprint.get("/healthcheck")
def healthcheck():
    """Flower's liveness probe: plain ``OK`` (GET /healthz checks Redis too)."""
    return Response("OK", mimetype="text/plain")
