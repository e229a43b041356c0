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
from datetime import datetime
from decimal import Decimal
from typing import Literal

from flask import Blueprint, render_template, request

from api import schemas
from api.auth import principal
from api.body import query_args
from api.graph_layout import NODE_HEIGHT, NODE_WIDTH, layout
from api.operations import (
    HTML,
    JSON,
    LOCATION,
    SESSION_ID,
    STORE,
    Operation,
    Param,
    Reply,
    html,
    path_param,
)
from api.routes import services
from api.routes.agents import AGENT_ID
from api.routes.costs import DAY_MS, CostsQuery, invalid_query, time_ms
from api.routes.flower import inspection, queue_table
from api.routes.orchestrator import visible_user
from orchestrator.core.agent_metrics import ENDED, AgentMetrics, Window
from orchestrator.core.agent_metrics import WINDOWS as AGENT_WINDOWS
from orchestrator.core.budgets import BUDGET_ERROR, SessionBudget
from orchestrator.core.errors import (
    AgentNotFoundError,
    ExperimentNotFoundError,
    SessionNotFoundError,
)
from orchestrator.core.experiments import Experiment, Variant
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
# The agent page's windows, as GET /api/orchestrator/agents/<id>/metrics?window= names them.
AGENT_WINDOW_NAMES: dict[Window, str] = {"1h": "Last hour", "24h": "Last day", "all": "All time"}
# An experiment's metrics as its report page names them.
METRIC_NAMES = {"success": "Success rate", "durationS": "Duration", "costUsd": "Cost"}


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


@blueprint.app_template_filter("percent")
def percent(rate: float | None) -> str:
    """A success rate as a percentage to one decimal without a trailing ".0" ("60%", "66.7%"),
    never "100%" or "0%" unless it is exactly that; "–" for None (no run ended). The CLI's
    ``format_rate`` writes the same figures."""
    if rate is None:
        return "–"
    value = round(rate * 100, 1)
    if 0 < rate < 1:
        value = min(max(value, 0.1), 99.9)
    return f"{value:.1f}".removesuffix(".0") + "%"


@blueprint.app_template_filter("run_time")
def run_time(seconds: float | None) -> str:
    """A latency estimate: three significant digits, in ms under a second ("2.5 ms", "350 ms"),
    in seconds under a minute ("1.5 s"), else in words ("3 min 8 s"); "–" for None."""
    if seconds is None:
        return "–"
    ms = float(f"{seconds * 1000:.3g}")
    if ms < 1000:
        return f"{ms:g} ms"
    if seconds < 60:
        return f"{float(f'{seconds:.3g}'):g} s"
    return duration_words(seconds)


def ended(metrics: AgentMetrics) -> int:
    """Runs that ended in the window (the success rate's denominator)."""
    return sum(getattr(metrics, name) for name in ENDED)


def trend(hour: AgentMetrics, day: AgentMetrics) -> tuple[str, str]:
    """The last hour's success rate against the last day's: ("up", "↑ 98% last hour"),
    ("down", "↓ 60% last hour"), ("same", "→ 80% last hour") as the shown percentages compare,
    or ("none", "–") when no run ended in the hour."""
    if hour.success_rate is None or day.success_rate is None:
        return "none", "–"
    shown, daily = percent(hour.success_rate), percent(day.success_rate)
    if shown == daily:
        return "same", f"→ {shown} last hour"
    if hour.success_rate > day.success_rate:
        return "up", f"↑ {shown} last hour"
    return "down", f"↓ {shown} last hour"


@blueprint.get("/agents")
def agents_page():
    """Every agent with its success rate, runs and run time p50/p95 over the last day, and the
    last hour's success rate against it (two reads of the metrics for all agents)."""
    agents = services().agents
    listed = agents.list()
    ids = [agent.id for agent in listed]
    day, hour = agents.metrics_of(ids, "24h"), agents.metrics_of(ids, "1h")
    return render_template(
        "agents.html",
        agents=listed,
        day=day,
        ended={agent_id: ended(metrics) for agent_id, metrics in day.items()},
        trends={agent_id: trend(hour[agent_id], day[agent_id]) for agent_id in ids},
        autoscaler=agents.autoscaler(),
    )


@blueprint.get("/agents/<agent_id>")
def agent_page(agent_id: str):
    """One agent and how it did over the last hour, the last day and all time (the figures of
    GET /api/orchestrator/agents/<id>/metrics), by error type and, all time, by capability."""
    agents = services().agents
    try:
        agent = agents.get(agent_id)
    except AgentNotFoundError:
        return render_template("missing.html", agent_id=agent_id), 404
    windows = {window: agents.metrics_of([agent_id], window)[agent_id] for window in AGENT_WINDOWS}
    error_types = sorted({name for m in windows.values() for name in m.failed_by_type})
    return render_template(
        "agent.html",
        agent=agent,
        windows=windows,
        window_names=AGENT_WINDOW_NAMES,
        rows=metric_rows(windows),
        error_types=error_types,
        capabilities=windows["all"].by_capability,
    )


def metric_rows(windows: dict[Window, AgentMetrics]) -> list[tuple[str, str, dict[Window, str]]]:
    """The agent page's table: (field, label, {window: text}), a row per figure."""

    def latency(pick: str, quantile: str) -> dict[Window, str]:
        return {w: run_time(getattr(getattr(m, pick), quantile)) for w, m in windows.items()}

    def counted(name: str) -> dict[Window, str]:
        return {w: str(getattr(m, name)) for w, m in windows.items()}

    def money(name: str) -> dict[Window, str]:
        return {
            w: "–" if getattr(m, name) is None else f"${getattr(m, name)}"
            for w, m in windows.items()
        }

    return [
        ("started", "Started", counted("started")),
        ("succeeded", "Succeeded", counted("succeeded")),
        ("failed", "Failed", counted("failed")),
        ("retried", "Retried", counted("retried")),
        ("fallback", "Fell back", counted("fallback")),
        ("timed_out", "Timed out", counted("timed_out")),
        ("success_rate", "Success rate", {w: percent(m.success_rate) for w, m in windows.items()}),
        ("run_p50", "Run time p50", latency("run", "p50_s")),
        ("run_p95", "Run time p95", latency("run", "p95_s")),
        ("wait_p50", "Queue wait p50", latency("queue_wait", "p50_s")),
        ("wait_p95", "Queue wait p95", latency("queue_wait", "p95_s")),
        ("cost", "Cost", money("cost_usd")),
        ("cost_per_run", "Cost per run", money("cost_per_run_usd")),
    ]


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
    now_ms = services().engine.now_ms()
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


@blueprint.get("/experiments")
def experiments_page():
    """Every experiment (GET /api/orchestrator/experiments): status, variants with their
    weights and what each sets, when it was created, and a link to its report."""
    return render_template("experiments.html", experiments=services().engine.experiments.list())


@blueprint.get("/experiments/<name>")
def experiment_page(name: str):
    """An experiment's report (GET /api/orchestrator/experiments/<name>): per variant the
    sessions, success rate, duration and cost with their intervals; the verdicts."""
    try:
        report = services().engine.experiments.report(name)
    except ExperimentNotFoundError:
        return render_template("experiment.html", report=None, name=name), 404
    experiment = report.experiment
    return render_template(
        "experiment.html",
        report=report,
        experiment=experiment,
        variants={v.name: v for v in experiment.variants},
        shares=weight_shares(experiment),
        metric_names=METRIC_NAMES,
        running=sum(v.running for v in report.variants),
    )


def weight_shares(experiment: Experiment) -> dict[str, float]:
    """Each variant's share of the sessions, from the weights."""
    total = sum(v.weight for v in experiment.variants)
    return {v.name: v.weight / total for v in experiment.variants}


@blueprint.app_template_filter("variant_sets")
def variant_sets(variant: Variant) -> str:
    """What a variant changes on its sessions: "policy learned, planner llm, web_research on
    researcher-002" (a pinned capability), or "nothing (the request's own settings)"."""
    parts = [
        f"{field} {getattr(variant, field)}"
        for field in ("policy", "planner", "template")
        if getattr(variant, field) is not None
    ]
    parts += [f"{cap} on {agent}" for cap, agent in (variant.agent_overrides or {}).items()]
    return ", ".join(parts) or "nothing (the request's own settings)"


@blueprint.app_template_filter("weight")
def weight(value: float) -> str:
    """A weight as written: 1 not 1.0, 0.25 as 0.25."""
    return f"{value:g}"


@blueprint.app_template_filter("dollars")
def dollars(value: float | None) -> str:
    """An amount of dollars to four significant digits, never in exponent form ("$0.01",
    "$0.00001235", "-$0.5"); "–" for None."""
    if value is None:
        return "–"
    digits = format(Decimal(f"{abs(value):.4g}").normalize(), "f")
    return f"{'-' if value < 0 else ''}${digits}"


@blueprint.app_template_filter("p_value")
def p_value(value: float | None) -> str:
    """A p-value: three significant digits ("0.0421", "0.5"), an exponent under 0.001
    ("3.2e-05"), "< 1e-06" for one the report rounded to 0; "–" for None (no test: too few
    sessions ended)."""
    if value is None:
        return "–"
    if value == 0:
        return "< 1e-06"
    return f"{value:.1e}" if value < 0.001 else f"{value:.3g}"


@blueprint.app_template_filter("duration")
def duration(seconds: float | None) -> str:
    """A duration as ``run_time`` writes it, with a sign when negative (the low end of a t
    interval can be, with few sessions that vary a lot); "–" for None."""
    if seconds is None:
        return "–"
    return ("-" if seconds < 0 else "") + run_time(abs(seconds))


@blueprint.app_template_filter("difference")
def difference(value: float, metric: str) -> str:
    """A verdict's difference (variant minus control) in its metric's unit: percentage points
    of success rate ("+12.5 pp"), a duration ("-35 ms"), dollars ("+$0.002")."""
    sign = "+" if value > 0 else "-" if value < 0 else ""
    if metric == "success":
        return f"{sign}{abs(value) * 100:.1f} pp"
    if metric == "durationS":
        return sign + duration(abs(value))
    return sign + dollars(abs(value))


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
        "/agents/<agent_id>",
        "dashboard.agent_page",
        "Dashboard: one agent, how it did over the last hour, day and all time",
        "dashboard",
        {
            200: html("the page"),
            302: TO_LOGIN,
            404: Reply(
                "no such agent (an HTML page); a path no route matches: the JSON error",
                {HTML: {"type": "string"}, JSON: schemas.Error},
            ),
        },
        params=(AGENT_ID,),
        errors=(405, *STORE),
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
        "/experiments",
        "dashboard.experiments_page",
        "Dashboard: A/B experiments, their variants and status",
        "dashboard",
        {200: html("the page"), 302: TO_LOGIN},
        errors=STORE,
    ),
    Operation(
        "get",
        "/experiments/<name>",
        "dashboard.experiment_page",
        "Dashboard: an experiment's report, per variant figures and verdicts",
        "dashboard",
        {
            200: html("the page"),
            302: TO_LOGIN,
            404: Reply(
                "no such experiment (an HTML page); a path no route matches: the JSON error",
                {HTML: {"type": "string"}, JSON: schemas.Error},
            ),
        },
        params=(path_param("name", "the experiment's name"),),
        errors=(405, *STORE),
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
