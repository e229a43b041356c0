"""The web dashboard: plain server-rendered pages (Jinja, autoescaped) with a little JavaScript
that follows a session live over SSE and acts only through the REST API (cancel, answer input,
drain). Everything agents produce is shown as text: escaped by the templates, or set with
``textContent`` by the script."""

from __future__ import annotations

import json

from flask import Blueprint, render_template, request

from api.graph_layout import NODE_HEIGHT, NODE_WIDTH, layout
from api.operations import LOCATION, SESSION_ID, STORE, Operation, Param, Reply, html, path_param
from api.routes import services
from api.routes.flower import inspection, queue_table
from api.routes.orchestrator import visible_user
from orchestrator.core.errors import SessionNotFoundError
from orchestrator.core.statuses import SessionStatus, StepStatus

blueprint = Blueprint(
    "dashboard",
    __name__,
    template_folder="../templates",
    static_folder="../static",
    static_url_path="/dashboard/static",
)
LIST_LIMIT = 100


@blueprint.app_template_filter("pretty_json")
def pretty_json(value: object) -> str:
    """JSON as readable text; the template escapes it like any other text (unlike ``tojson``,
    whose \u003c escapes would show in the page)."""
    return json.dumps(value, indent=2, ensure_ascii=False)


@blueprint.get("/")
def sessions_page():
    status = request.args.get("status") or None
    user_id = request.args.get("userId") or None
    if status not in (None, *SessionStatus):
        status = None
    sessions, _ = services().engine.list_sessions(
        user_id=visible_user(user_id), status=status, limit=LIST_LIMIT, cursor=None
    )
    return render_template(
        "sessions.html",
        sessions=sessions,
        status=status,
        user_id=user_id or "",
        statuses=list(SessionStatus),
        now_s=services().engine.context.clock(),
    )


@blueprint.get("/sessions/<session_id>")
def session_page(session_id: str):
    try:
        snapshot = services().engine.snapshot(session_id)
    except SessionNotFoundError:
        return render_template("missing.html", session_id=session_id), 404
    order = list(snapshot.steps)
    graph = layout(order, {s: snapshot.steps[s].depends_on for s in order})
    definitions = {}
    pending = list(snapshot.plan.steps)
    while pending:
        step = pending.pop()
        definitions[step.id] = step.model_dump(mode="json", by_alias=True, exclude={"subtasks"})
        pending.extend(step.subtasks)
    return render_template(
        "session.html",
        s=snapshot,
        graph=graph,
        node_width=NODE_WIDTH,
        node_height=NODE_HEIGHT,
        definitions=definitions,
        step_statuses=list(StepStatus),
    )


@blueprint.get("/agents")
def agents_page():
    agents = services().agents
    return render_template("agents.html", agents=agents.list(), autoscaler=agents.autoscaler())


@blueprint.get("/queues")
def queues_page():
    return render_template("queues.html", rows=queue_table())


@blueprint.get("/workers")
def workers_page():
    return render_template("workers.html", workers=inspection().worker_documents())


FILENAME = path_param("filename", "a file under the static folder")
# Dashboard pages send a caller without credentials to the login page.
TO_LOGIN = html("no credentials: a redirect to /login?next=...", LOCATION)
STATIC_FILE = Reply(
    "the file",
    {"text/css": {"type": "string"}, "text/javascript": {"type": "string"}},
)

OPERATIONS = (
    Operation(
        "get",
        "/",
        "dashboard.sessions_page",
        "Dashboard: sessions",
        "dashboard",
        {200: html("the page"), 302: TO_LOGIN},
        params=(
            Param("status", "query", {"type": "string"}, "only sessions with this status"),
            Param("userId", "query", {"type": "string"}, "only this user's sessions"),
        ),
        errors=STORE,
    ),
    Operation(
        "get",
        "/sessions/<session_id>",
        "dashboard.session_page",
        "Dashboard: one session, its graph and steps",
        "dashboard",
        {200: html("the page"), 302: TO_LOGIN, 404: html("no such session (an HTML page)")},
        params=(SESSION_ID,),
        errors=(405, *STORE),
    ),
    Operation(
        "get",
        "/agents",
        "dashboard.agents_page",
        "Dashboard: agents",
        "dashboard",
        {200: html("the page"), 302: TO_LOGIN},
        errors=STORE,
    ),
    Operation(
        "get",
        "/queues",
        "dashboard.queues_page",
        "Dashboard: queues",
        "dashboard",
        {200: html("the page"), 302: TO_LOGIN},
        errors=STORE,
    ),
    Operation(
        "get",
        "/workers",
        "dashboard.workers_page",
        "Dashboard: workers",
        "dashboard",
        {200: html("the page"), 302: TO_LOGIN},
        errors=STORE,
    ),
    Operation(
        "get",
        "/dashboard/static/<path:filename>",
        "dashboard.static",
        "Dashboard script and styles",
        "dashboard",
        {200: STATIC_FILE},
        params=(FILENAME,),
        errors=(404,),
        auth=False,
    ),
    Operation(  # Flask's own static route (api/static), the same files
        "get",
        "/static/<path:filename>",
        "static",
        "The same static files at Flask's default path",
        "dashboard",
        {200: STATIC_FILE},
        params=(FILENAME,),
        errors=(404,),
        auth=False,
    ),
)
