"""Plain-text renderings of API documents for the terminal: a session's step table (subtasks
under their parent), durations, log lines, what a session spent (its cost), and A/B
experiments with their reports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any


def render_session(snapshot: dict[str, Any]) -> list[str]:
    """A headline, a table of the steps (id, status, agent, attempts, duration), then errors."""
    lines = [_headline(snapshot)]
    if snapshot.get("cost"):
        lines.append(f"cost: {cost_line(snapshot['cost'])}")
    if snapshot.get("budget"):
        lines.append(f"budget: {budget_line(snapshot['budget'])}")
    lines.append("")
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


def render_table(rows: list[list[str]], right: frozenset[int] = frozenset()) -> list[str]:
    """Columns two spaces apart, the first row a header; left-aligned but for the columns
    numbered in ``right`` (figures)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
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


def format_rate(rate: float | None) -> str:
    """A success rate as a percentage to one decimal, without a trailing ".0" ("60%", "66.7%");
    never "100%" or "0%" unless it is exactly that; "-" for None (no run ended)."""
    if rate is None:
        return "-"
    percent = round(rate * 100, 1)
    if 0 < rate < 1:
        percent = min(max(percent, 0.1), 99.9)
    return f"{percent:.1f}".removesuffix(".0") + "%"


def format_run_time(seconds: float | None) -> str:
    """A latency estimate: three significant digits in milliseconds under a second ("2.5ms",
    "350ms"), else as ``format_duration`` ("1.50s", "3m 07s"); "-" for None."""
    if seconds is None:
        return "-"
    ms = float(f"{seconds * 1000:.3g}")
    return f"{ms:g}ms" if ms < 1000 else format_duration(seconds)


def format_entry(entry: dict[str, Any]) -> str:
    """One line: time, level, source, [step agent], message, and the error if any."""
    scope = " ".join(part for part in (entry.get("taskId"), entry.get("agentId")) if part)
    text = f"{entry.get('timestamp', '')} {entry['level'].upper():<8} {entry['source']:<12} "
    text += (f"[{scope}] " if scope else "") + entry["message"]
    return text + (f"  error: {entry['error']}" if entry.get("error") else "")


# --- what a session spent: the snapshot's `cost`, GET .../sessions/<id>/cost ------------------
# The same wording as the dashboard's session page (api/static/dashboard.js, costLine). ``usd``
# is an exact decimal string of dollars, shown as it is; None (absent on the snapshot) when
# calls were made and none had a price.

FIGURE_COLUMNS = frozenset({1, 2, 3, 5})  # calls, prompt, completion, cpu s: right-aligned


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def money(figures: dict[str, Any]) -> str:
    """``$0.0000711``, ``$0.0000711 + 2 calls without a price``, or ``cost unknown``."""
    usd = figures.get("usd")
    if isinstance(usd, str):
        uncosted = figures.get("uncostedCalls") or 0
        return f"${usd}" + (f" + {plural(uncosted, 'call')} without a price" if uncosted else "")
    return "cost unknown" if figures.get("modelCalls") else "$0"


def unpriced_models(cost: dict[str, Any]) -> list[str]:
    """The models of ``byModel`` none of whose calls had a price."""
    by_model = cost.get("byModel") or {}
    return [model for model, figures in by_model.items() if figures.get("usd") is None]


def cost_line(cost: dict[str, Any]) -> str:
    """``$0.0000711 · 6 model calls · 558 tokens · CPU 0.42 s``; a cost that is unknown names
    the models without a price: ``cost unknown (no price for m-1) · ...``."""
    first = money(cost)
    calls = cost.get("modelCalls") or 0
    if cost.get("usd") is None and calls:
        unpriced = unpriced_models(cost)
        first += f" (no price for {', '.join(unpriced)})" if unpriced else " (no price)"
    counted = plural(calls, "model call")
    if cost.get("uncountedCalls"):
        counted += f" ({cost['uncountedCalls']} without token counts)"
    tokens = plural(cost.get("totalTokens") or 0, "token")
    return " · ".join([first, counted, tokens, f"CPU {cost.get('cpuSeconds') or 0:.2f} s"])


def budget_line(budget: dict[str, Any]) -> str:
    """``$0.50 (spent $0.49) · 20000 tokens (used 18000) · paused: raise or stop`` with the
    command that answers when the session is paused on it."""
    parts = []
    if budget.get("maxCostUsd") is not None:
        parts.append(f"${budget['maxCostUsd']} (spent ${budget.get('spentUsd', '0')})")
    if budget.get("maxTokens") is not None:
        parts.append(f"{budget['maxTokens']} tokens (used {budget.get('spentTokens', 0)})")
    if budget.get("paused"):
        parts.append(
            "PAUSED: meowstik input <session> <step> '{\"raiseTo\": <dollars>}' or "
            "'{\"stop\": true}'"
        )
    return " · ".join(parts)


def _usd_cell(figures: dict[str, Any]) -> str:
    """The USD column: the exact amount (``unknown`` without a price), calls without a price."""
    usd = figures.get("usd")
    if not isinstance(usd, str):
        return "unknown" if figures.get("modelCalls") else "0"
    uncosted = figures.get("uncostedCalls") or 0
    return usd + (f" (+{uncosted} without a price)" if uncosted else "")


def _cost_row(name: str, figures: dict[str, Any], cpu: bool = True) -> list[str]:
    row = [
        name,
        f"{figures.get('modelCalls') or 0:,}",
        f"{figures.get('promptTokens') or 0:,}",
        f"{figures.get('completionTokens') or 0:,}",
        _usd_cell(figures),
    ]
    return [*row, f"{figures.get('cpuSeconds') or 0:.2f}"] if cpu else row


def _cost_table(heading: str, named: dict[str, dict[str, Any]], cpu: bool = True) -> list[str]:
    """By agent (with the CPU time of its step runs) or by model (calls only: no CPU)."""
    rows = [[heading, "CALLS", "PROMPT", "COMPLETION", "USD", *(["CPU S"] if cpu else [])]]
    rows += [_cost_row(name, figures, cpu) for name, figures in named.items()]
    return render_table(rows, FIGURE_COLUMNS)


def render_costs(view: dict[str, Any]) -> list[str]:
    """GET .../sessions/<id>/cost: the cost line, a table of the steps (in plan order) with the
    totals under it, the same by agent and by model, then the price table used."""
    lines = [f"session {view.get('sessionId', '?')}: {cost_line(view)}", ""]
    rows = [["STEP", "CALLS", "PROMPT", "COMPLETION", "USD", "CPU S"]]
    rows += [_cost_row(row.get("stepId", "?"), row) for row in view.get("steps") or []]
    rows.append(_cost_row("total", view))
    table = render_table(rows, FIGURE_COLUMNS)
    lines += [*table[:-1], "-" * max(len(line) for line in table), table[-1]]
    if view.get("byAgent"):
        lines += ["", "by agent:", *_cost_table("AGENT", view["byAgent"])]
    if view.get("byModel"):
        lines += ["", "by model:", *_cost_table("MODEL", view["byModel"], cpu=False)]
    prices = view.get("prices") or {}
    source = prices.get("source") or "unknown"
    lines += ["", f"prices: {source}" + (f", as of {prices['asOf']}" if prices.get("asOf") else "")]
    return lines


# --- A/B experiments: GET .../experiments and .../experiments/<name> ------------------------
# The same figures as the dashboard's experiment pages (api/routes/dashboard.py: percent,
# dollars, p_value, difference), in the terminal's units ("350ms", "1.50s").

METRIC_NAMES = {"success": "success", "durationS": "duration", "costUsd": "cost"}


def variant_sets(variant: dict[str, Any]) -> str:
    """What a variant changes on its sessions: ``policy learned, planner llm, web_research on
    researcher-002`` (a pinned capability), or ``nothing`` (the request's own settings)."""
    parts = [
        f"{field} {variant[field]}"
        for field in ("policy", "planner", "template")
        if variant.get(field) is not None
    ]
    parts += [f"{cap} on {agent}" for cap, agent in (variant.get("agentOverrides") or {}).items()]
    return ", ".join(parts) or "nothing"


def format_weight(weight: float) -> str:
    return f"{weight:g}"


def format_usd(value: float | None) -> str:
    """Dollars to four significant digits, never in exponent form (``$0.0015``,
    ``-$0.0005``); "-" for None."""
    if value is None:
        return "-"
    digits = format(Decimal(f"{abs(value):.4g}").normalize(), "f")
    return f"{'-' if value < 0 else ''}${digits}"


def format_p_value(value: float | None) -> str:
    """Three significant digits (``0.0421``), an exponent under 0.001 (``2.6e-04``),
    ``< 1e-06`` for one the report rounded to 0; "-" for None."""
    if value is None:
        return "-"
    if value == 0:
        return "< 1e-06"
    return f"{value:.1e}" if value < 0.001 else f"{value:.3g}"


def format_seconds(seconds: float | None) -> str:
    """``format_run_time`` with a sign when negative (the low end of a t interval can be)."""
    if seconds is None:
        return "-"
    return ("-" if seconds < 0 else "") + format_run_time(abs(seconds))


def format_difference(value: float, metric: str) -> str:
    """Variant minus control in the metric's unit: ``+45.0 pp`` (success rate), ``-605ms``,
    ``-$0.0005``."""
    sign = "+" if value > 0 else "-" if value < 0 else ""
    if metric == "success":
        return f"{sign}{abs(value) * 100:.1f} pp"
    if metric == "durationS":
        return sign + format_run_time(abs(value))
    return sign + format_usd(abs(value))


def render_experiments(experiments: list[dict[str, Any]]) -> list[str]:
    """A row per experiment: name, status, how sessions are assigned and join, its variants
    with their weights and what each sets, and when it was created."""
    rows = [["NAME", "STATUS", "ASSIGN BY", "MATCH", "VARIANTS", "CREATED"]]
    for experiment in experiments:
        variants = ", ".join(
            f"{v['name']} (weight {format_weight(v.get('weight', 1))}: {variant_sets(v)})"
            for v in experiment.get("variants", [])
        )
        rows.append(
            [
                experiment["name"],
                experiment.get("status", "?"),
                experiment.get("assignBy", "session"),
                experiment.get("match", "named"),
                variants,
                experiment.get("createdAt") or "-",
            ]
        )
    return render_table(rows)


def _interval(summary: dict[str, Any], formatter: Callable[[Any], str]) -> str:
    interval = summary.get("interval")
    if not interval:
        return "-"
    return f"[{formatter(interval['low'])}, {formatter(interval['high'])}]"


def _summary_table(
    report: dict[str, Any], key: str, formatter: Callable[[Any], str], level: str
) -> list[str]:
    rows = [["VARIANT", "N", "MEAN", f"{level} INTERVAL", "P50", "P95"]]
    for variant in report.get("variants", []):
        summary = variant.get(key) or {}
        rows.append(
            [
                variant["name"],
                str(summary.get("n", 0)),
                formatter(summary.get("mean")),
                _interval(summary, formatter),
                formatter(summary.get("p50")),
                formatter(summary.get("p95")),
            ]
        )
    return render_table(rows, right=frozenset({1, 2, 4, 5}))


def render_experiment_report(report: dict[str, Any]) -> list[str]:
    """GET .../experiments/<name>: a headline, the variants (sessions, success rate with its
    interval), duration and cost tables for the metrics the experiment measures, then a line
    per verdict: each variant against the control, and which is better when significant."""
    experiment = report["experiment"]
    metrics = experiment.get("metrics") or list(METRIC_NAMES)
    confidence = experiment.get("confidence", 0.95)
    level = format_rate(confidence)
    status = experiment.get("status", "?")
    if experiment.get("stoppedAt"):
        status += f" {experiment['stoppedAt']}"
    joins = "every session" if experiment.get("match") == "all" else "sessions naming it"
    lines = [
        f"experiment {experiment['name']}: {status}, created {experiment.get('createdAt', '?')}, "
        f"assigned by {experiment.get('assignBy', 'session')}, joined by {joins}, "
        f"confidence {level}",
        "",
    ]
    settings = {v["name"]: v for v in experiment.get("variants", [])}
    total = sum(v.get("weight", 1) for v in settings.values()) or 1
    header = ["VARIANT", "SETS", "WEIGHT", "SESSIONS", "RUNNING", "ENDED"]
    if "success" in metrics:
        header += ["SUCCESS", f"{level} INTERVAL"]
    rows = [header]
    for variant in report.get("variants", []):
        setting = settings.get(variant["name"], {})
        weight = setting.get("weight", 1)
        row = [
            variant["name"],
            variant_sets(setting) if setting else "-",
            f"{format_weight(weight)} ({format_rate(weight / total)})" if setting else "-",
            str(variant.get("sessions", 0)),
            str(variant.get("running", 0)),
            str(variant.get("ended", 0)),
        ]
        if "success" in metrics:
            success = variant.get("success") or {}
            row += [format_rate(success.get("mean")), _interval(success, format_rate)]
        rows.append(row)
    lines += render_table(rows, right=frozenset({3, 4, 5, 6}))
    if "durationS" in metrics:
        lines += ["", "duration (completed sessions, start to end):"]
        lines += _summary_table(report, "durationS", format_seconds, level)
    if "costUsd" in metrics:
        lines += ["", "cost (dollars per ended session):"]
        lines += _summary_table(report, "costUsd", format_usd, level)
    verdicts = report.get("verdicts") or []
    if verdicts:
        alpha = f"{1 - confidence:.4g}"
        lines += ["", f"verdicts (each variant against the control; significant at p < {alpha}):"]
    for verdict in verdicts:
        p_value = verdict.get("pValue")
        if verdict.get("better"):
            said = f"better: {verdict['better']}"
        elif p_value is None:
            said = "not tested (too few sessions ended)"
        else:
            said = "no significant difference"
        lines.append(
            f"  {METRIC_NAMES.get(verdict['metric'], verdict['metric'])}: {verdict['variant']} - "
            f"{verdict['control']} = {format_difference(verdict['difference'], verdict['metric'])}"
            f", p = {format_p_value(p_value)} ({verdict['test']}): {said}"
        )
    if report.get("expired"):
        lines += [
            "",
            f"expired: {plural(report['expired'], 'assigned session')} removed by retention",
        ]
    return lines
