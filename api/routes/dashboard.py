"""The web dashboard: plain server-rendered pages (Jinja, autoescaped) with a little JavaScript
that follows a session live over SSE and acts only through the REST API (cancel, answer input,
drain). Everything agents produce is shown as text: escaped by the templates, or set with
``textContent`` by the script.

The session page's State panel is drawn here from the engine's SessionState view, and redrawn
by state-panel.js (same markup, same truncation and time-left words) whenever the event stream says
``state.updated``."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from decimal import Decimal
from typing import Literal

from flask import Blueprint, render_template, request

from api.auth import principal
from api.body import query_args
from api.graph_layout import NODE_HEIGHT, NODE_WIDTH, layout
from api.operations import LOCATION, SESSION_ID, STORE, Operation, Param, Reply, html, path_param
from api.routes import services
from api.routes.costs import DAY_MS, CostsQuery, invalid_query, time_ms
from api.routes.flower import inspection, queue_table
from api.routes.orchestrator import visible_user
from orchestrator.core.budgets import BUDGET_ERROR, SessionBudget
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
# A state value is shown as compact JSON cut to this many characters; its tooltip holds more.
VALUE_PREVIEW_CHARS = 120
VALUE_TOOLTIP_CHARS = 2000
# The costs page's windows: the last hour, day, week or 30 days up to ``until`` (default: now).
WINDOWS = {"1h": 3_600_000, "1d": DAY_MS, "7d": 7 * DAY_MS, "30d": 30 * DAY_MS}
WINDOW_NAMES = {"1h": "Last hour", "1d": "Last day", "7d": "Last week", "30d": "Last 30 days"}
GROUP_NAMES = {"user": "By user", "agent": "By agent", "model": "By model"}


class CostsPageQuery(CostsQuery):
    """The costs page's query: the API's (?groupBy=&since=&until=, the same checks and
    messages), or ``window`` (1h, 1d, 7d, 30d before ``until``) in place of ``since``."""

    window: Literal["1h", "1d", "7d", "30d"] | None = None


@blueprint.app_template_filter("pretty_json")
def pretty_json(value: object) -> str:
    """JSON as readable text; the template escapes it like any other text (unlike ``tojson``,
    whose \u003c escapes would show in the page)."""
    return json.dumps(value, indent=2, ensure_ascii=False)


@blueprint.app_template_filter("compact_json")
def compact_json(value: object, limit: int = VALUE_PREVIEW_CHARS) -> str:
    """One-line JSON cut to ``limit`` characters (the last one an ellipsis when cut), as
    state-panel.js ``compactJson`` writes it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


@blueprint.app_template_filter("time_left")
def time_left(expires_at: str | None, now_ms: int) -> str:
    """The time until the ISO instant ``expires_at`` in words ("4 min 10 s"), "expired" once
    it has passed, "" without one; state-panel.js ``timeLeft`` counts it down in the page."""
    if not expires_at:
        return ""
    expires_ms = datetime.fromisoformat(expires_at.replace("Z", "+00:00")).timestamp() * 1000
    return duration_words((expires_ms - now_ms) / 1000)


def duration_words(seconds: float) -> str:
    """Whole seconds rounded up, in the two largest units: "42 s", "3 min 5 s", "2 h 0 min"."""
    whole = math.ceil(seconds)
    if whole <= 0:
        return "expired"
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


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
    engine = services().engine
    try:
        snapshot = engine.snapshot(session_id)
        state = engine.state.view(session_id)
    except SessionNotFoundError:
        return render_template("missing.html", session_id=session_id), 404
    order = list(snapshot.steps)
    graph = layout(order, {s: snapshot.steps[s].depends_on for s in order})
    budget_steps = [
        step_id
        for step_id, st in snapshot.steps.items()
        if st.status == "waiting_for_input"
        and st.input_request
        and st.input_request.get("reason") == "budget"
    ]
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
        state=state,
        now_ms=engine.context.now_ms(),
        tooltip_chars=VALUE_TOOLTIP_CHARS,
        budget_steps=budget_steps,
        budget_request=snapshot.steps[budget_steps[0]].input_request if budget_steps else None,
        raise_suggestion=raise_suggestion(snapshot.budget),
        budget_stop=next((e.message for e in snapshot.errors if e.error_type == BUDGET_ERROR), ""),
    )


def raise_suggestion(budget: SessionBudget | None) -> str:
    """What the budget form offers to raise the cost limit to: twice the limit (or twice what
    was spent, when that is more); dashboard.js ``raiseSuggestion`` offers the same."""
    if budget is None:
        return ""
    amounts = [Decimal(budget.spent_usd or "0")]
    if budget.max_cost_usd is not None:
        amounts.append(Decimal(budget.max_cost_usd))
    doubled = 2 * max(amounts)
    return format(doubled.normalize(), "f") if doubled > 0 else ""


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


@blueprint.get("/costs")
def costs_page():
    """Spending grouped by user, agent or model over a window, from the report GET
    /api/orchestrator/costs answers (the same query checks; a user sees its own)."""
    query = query_args(CostsPageQuery)
    if query.window is not None and query.since is not None:
        raise invalid_query("window", "give since or window, not both")
    now_ms = int(time.time() * 1000)
    until_ms = time_ms(query.until, "until") if query.until is not None else now_ms
    if query.since is not None:
        since_ms = time_ms(query.since, "since")
    else:
        since_ms = until_ms - WINDOWS[query.window or "1d"]
    if since_ms > until_ms:
        raise invalid_query("since", f"since is after until ({query.since!r} > {query.until!r})")
    caller = principal()
    user = None if caller.is_admin else caller.user_id
    report = services().costs.report(query.group_by, since_ms, until_ms, user=user)
    return render_template(
        "costs.html",
        report=report,
        group_by=query.group_by,
        window=None if query.since is not None else query.window or "1d",
        since=query.since,
        until=query.until,
        windows=WINDOW_NAMES,
        groups=GROUP_NAMES,
        everyone=user is None,
    )


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
        "/costs",
        "dashboard.costs_page",
        "Dashboard: spending by user, agent or model (a user sees its own)",
        "dashboard",
        {200: html("the page"), 302: TO_LOGIN},
        query=CostsPageQuery,
        errors=(422, *STORE),
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
