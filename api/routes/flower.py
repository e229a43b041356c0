"""Flower-compatible JSON endpoints (Flower's paths and shapes), so tools written for Flower's
REST API work against this API: workers, queue lengths, tasks, task info, task types, revoke,
healthcheck. Tasks are steps (task id = job id ``<session id>.<step id>``), kept in Redis with
their sessions instead of in memory."""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint, Response, jsonify, request
from pydantic import Field, StringConstraints

from api import schemas
from api.body import query_args
from api.errors import ApiError
from api.operations import BY_ID, REF, STORE, TEXT, Operation, Param, Reply, Schema, ok, path_param
from api.routes import services
from orchestrator.core.dispatch import RUN_STEP_TASK
from orchestrator.core.models import RequestModel
from orchestrator.engine.inspection import SORT_KEYS, Inspection, split_task_id
from orchestrator.store.metrics import known_queues

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
    return Inspection(found.engine, found.workers)


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
    agents = found.agents.list()
    names = set(known_queues(agents))
    consumers: dict[str, list[str]] = {}
    for worker_name, worker in inspection().worker_documents().items():
        for queue in worker["active_queues"]:
            names.add(queue["name"])
            if worker["alive"]:
                consumers.setdefault(queue["name"], []).append(worker_name)
    ordered = sorted(names)
    depths = found.metrics.queue_lengths(ordered)
    return [
        (name, depth, sorted(consumers.get(name, [])))
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


TASK_ID = path_param("task_id", "a job id, '<session id>.<step id>'")


def worker_map(value: Schema) -> Schema:
    return {"type": "object", "additionalProperties": value}


WORKERS_RESPONSE: Schema = {
    "description": "workers by name; with ?status=true, whether each is alive",
    "anyOf": [
        worker_map({"$ref": REF.format(model="WorkerDocument")}),
        worker_map({"type": "boolean"}),
    ],
}
TASKS_RESPONSE: Schema = {
    "description": "tasks (steps) by task id",
    **worker_map({"$ref": REF.format(model="TaskDocument")}),
}

OPERATIONS = (
    Operation(
        "get",
        "/api/workers",
        "flower.list_workers",
        "Workers from their heartbeat records (Flower's shape)",
        "flower",
        {200: ok(WORKERS_RESPONSE)},
        query=WorkerQuery,
        errors=(404, 422, *STORE),
    ),
    Operation(
        "get",
        "/api/queues/length",
        "flower.queue_lengths",
        "Waiting messages per queue (Flower's shape)",
        "flower",
        {200: ok(schemas.QueueLengths)},
        errors=STORE,
    ),
    Operation(
        "get",
        "/api/tasks",
        "flower.list_tasks",
        "Steps as Celery tasks (Flower's shape)",
        "flower",
        {200: ok(TASKS_RESPONSE)},
        query=TaskQuery,
        errors=(422, *STORE),
    ),
    Operation(
        "get",
        "/api/task/info/<task_id>",
        "flower.task_info",
        "One step as a Celery task (Flower's shape)",
        "flower",
        {200: ok(schemas.TaskDocument)},
        params=(TASK_ID,),
        errors=(*BY_ID, *STORE),
    ),
    Operation(
        "get",
        "/api/task/types",
        "flower.task_types",
        "The task names workers run",
        "flower",
        {200: ok(schemas.TaskTypes)},
    ),
    Operation(
        "post",
        "/api/task/revoke/<task_id>",
        "flower.revoke_task",
        "Revoke one step (?terminate=true also stops a running copy)",
        "flower",
        {200: ok(schemas.RevokeResult)},
        params=(
            TASK_ID,
            Param("terminate", "query", {"type": "boolean"}, "also stop a running copy"),
        ),
        errors=(*BY_ID, 409, 422, *STORE),
    ),
    Operation(
        "get",
        "/healthcheck",
        "flower.healthcheck",
        "Flower's liveness probe: plain OK",
        "health",
        {200: Reply("OK", {TEXT: {"type": "string", "const": "OK"}})},
        auth=False,
    ),
)
