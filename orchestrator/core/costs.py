"""What a session spent (pure): its counters (Keys.costs, kept exactly by record_call.lua and
CostLedger.add_run) as the figures the snapshot, GET .../cost and the dashboard show.

Money is an exact decimal string of dollars (``usd``), from integer pico-dollars: it is None
when calls were made and none of them had a price; when some had one, it is the sum of those
and ``uncostedCalls`` says how many are missing. ``uncountedCalls`` are calls whose server
counted no tokens.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import Field

from orchestrator.core.camel import CamelModel
from orchestrator.core.chat import Usage
from orchestrator.core.errors import ConfigurationError
from orchestrator.core.prices import pico_of_usd, usd

_FIELDS = (
    "calls", "prompt", "completion", "pico", "uncosted", "uncounted", "cpu_us", "wall_ms",
    "reported",
)  # fmt: skip


class CostFigures(CamelModel):
    usd: str | None = "0"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    model_calls: int = 0
    uncosted_calls: int = 0
    uncounted_calls: int = 0
    cpu_seconds: float = 0.0  # of the worker processes, summed over the step runs
    wall_seconds: float = 0.0
    runs: int = 0
    agent_reports: int = 0  # completions whose agent reported spending of its own
    # the most resident memory a worker process held while one of the runs ran (Linux); None:
    # not measured (other platforms, and GET /costs, whose hourly counters keep no peaks)
    peak_rss_mb: float | None = None


class SessionCostSummary(CostFigures):
    """The session's ``cost`` on its snapshot: totals, by agent and by model."""

    by_agent: dict[str, CostFigures] = Field(default_factory=dict)
    by_model: dict[str, CostFigures] = Field(default_factory=dict)


class StepCostRow(CostFigures):
    step_id: str


class PriceSource(CamelModel):
    source: str
    as_of: str | None = None


class SessionCost(SessionCostSummary):
    """GET /api/orchestrator/sessions/<id>/cost: the summary, a row per step, the prices used."""

    session_id: str
    steps: list[StepCostRow] = Field(default_factory=list)
    prices: PriceSource | None = None


def figures(counters: dict[str, int], prefix: str) -> CostFigures:
    """The figures under ``prefix`` ("t|", "s|<step>|", "a|<agent>|", "m|<model>|")."""
    value = {name: counters.get(prefix + name, 0) for name in _FIELDS}
    calls = value["calls"]
    costed = calls - value["uncosted"]
    return CostFigures(
        usd=usd(value["pico"]) if costed > 0 or calls == 0 else None,
        prompt_tokens=value["prompt"],
        completion_tokens=value["completion"],
        total_tokens=value["prompt"] + value["completion"],
        model_calls=calls,
        uncosted_calls=value["uncosted"],
        uncounted_calls=value["uncounted"],
        cpu_seconds=value["cpu_us"] / 1_000_000,
        wall_seconds=value["wall_ms"] / 1000,
        runs=counters.get(prefix + "runs", 0),
        agent_reports=value["reported"],
        peak_rss_mb=round(rss / 1024, 1) if (rss := counters.get(prefix + "rss_kb")) else None,
    )


def names_under(counters: dict[str, int], kind: str) -> list[str]:
    """The agents ("a"), models ("m") or steps ("s") the counters hold, sorted."""
    found = {field.split("|")[1] for field in counters if field.startswith(kind + "|")}
    return sorted(found)


def session_summary(counters: dict[str, int]) -> SessionCostSummary:
    total = figures(counters, "t|")
    return SessionCostSummary(
        **total.model_dump(),
        by_agent={name: figures(counters, f"a|{name}|") for name in names_under(counters, "a")},
        by_model={name: figures(counters, f"m|{name}|") for name in names_under(counters, "m")},
    )


def session_cost(
    session_id: str,
    counters: dict[str, int],
    step_order: list[str],
    prices: PriceSource | None = None,
) -> SessionCost:
    """The whole view: a row for every step of ``step_order`` (zeros for those that spent
    nothing), then any other step the counters name."""
    summary = session_summary(counters)
    spent = names_under(counters, "s")
    order = list(dict.fromkeys([*step_order, *spent]))
    rows = [
        StepCostRow(step_id=step, **figures(counters, f"s|{step}|").model_dump()) for step in order
    ]
    return SessionCost(session_id=session_id, steps=rows, prices=prices, **summary.model_dump())


REPORTED_MODEL = "agent-reported"  # the model name reported spending is counted under


def reported_spending(usage: Any, cost_usd: Any, where: str) -> dict[str, str] | None:
    """What an agent reported spending by itself, as record counters (decimal strings: Redis
    adds them exactly), or None when it reported nothing.

    Raises:
        ValueError: tokens that are not whole non-negative numbers, or dollars that are not a
            non-negative amount (``where`` names who reported them).
    """
    if usage is None and cost_usd is None:
        return None
    prompt: Any = 0
    completion: Any = 0
    model = REPORTED_MODEL
    if usage is not None:
        if isinstance(usage, Usage):
            prompt, completion = usage.prompt_tokens, usage.completion_tokens
        elif isinstance(usage, dict):
            prompt = usage.get("promptTokens", usage.get("prompt_tokens", 0))
            completion = usage.get("completionTokens", usage.get("completion_tokens", 0))
            model = str(usage.get("model") or REPORTED_MODEL).replace("|", "/")[:200]
        else:
            raise ValueError(f"{where}: usage must be an object, not {type(usage).__name__}")
        for name, value in (("promptTokens", prompt), ("completionTokens", completion)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"{where}: usage.{name} must be a whole number >= 0, not {value!r}"
                )
    pico = ""
    if cost_usd is not None:
        if isinstance(cost_usd, bool) or not isinstance(cost_usd, int | float | str | Decimal):
            raise ValueError(f"{where}: costUsd must be a number, not {type(cost_usd).__name__}")
        try:
            pico = str(pico_of_usd(cost_usd, f"{where}: costUsd"))
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from exc
    return {"prompt": str(prompt), "completion": str(completion), "pico": pico, "model": model}


GROUP_KINDS = {"user": "u", "agent": "a", "model": "m"}


class CostGroup(CostFigures):
    key: str  # the user id ("-": sessions without one), agent id or model


class CostReport(CamelModel):
    """GET /api/orchestrator/costs: spending between ``since`` and ``until`` (whole hours),
    grouped by user, agent or model; a user's token sees only its own spending."""

    group_by: str
    since: str
    until: str
    groups: list[CostGroup]
    total: CostFigures


def cost_report(
    hours: list[dict[str, int]], group_by: str, since: str, until: str, user: str | None
) -> CostReport:
    """The report over hourly counters (``Keys.cost_hour``); ``user``: only that user's."""
    merged: dict[str, int] = {}
    for hour in hours:
        for name, value in hour.items():
            merged[name] = merged.get(name, 0) + value
    kind = GROUP_KINDS[group_by]
    if user is not None and group_by == "user":
        merged = {name: value for name, value in merged.items() if name.startswith(f"u|{user}|")}
    elif user is not None:  # the user's own spending by agent or model: "ua|" and "um|" fields
        scoped = f"u{kind}|{user}|"
        merged = {
            f"{kind}|{name.removeprefix(scoped)}": value
            for name, value in merged.items()
            if name.startswith(scoped)
        }
    groups = [
        CostGroup(key=name, **figures(merged, f"{kind}|{name}|").model_dump())
        for name in names_under(merged, kind)
    ]
    total: dict[str, int] = {}
    for name, value in merged.items():
        if name.startswith(kind + "|"):
            counter = "t|" + name.rsplit("|", 1)[1]
            total[counter] = total.get(counter, 0) + value
    return CostReport(
        group_by=group_by, since=since, until=until, groups=groups, total=figures(total, "t|")
    )
