"""Budgets (pure): how much a session may spend, and what it says when it has spent it.

A session's budget is a cost limit in pico-dollars and/or a token limit, kept in its hash as the
"budget" field ``{"maxPico": "<integer>", "maxTokens": <integer>}`` (either may be missing). The
worker checks it before each model call it has not recorded yet and before a step starts
(budget_gate.lua): a call may start when what is spent, plus what calls in flight are expected
to cost, plus what this call is expected to cost stays within the budget. A call's expected cost
is the largest a call to that model has cost in this session; until one has, a call to it runs
only when no other call of the session is in flight, so parallel steps overshoot by at most one
call. When the next call would cross the budget, the session pauses: the step asking parks as an
operator-input request with reason ``budget`` (the ``budgetPause`` field holds it), every other
step parks at its next model call or start, and a person answers ``{"raiseTo": dollars}`` or
``{"stop": true}`` (or the deadline passes: stop).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from orchestrator.core.camel import CamelModel
from orchestrator.core.errors import BudgetValueError, ConfigurationError
from orchestrator.core.prices import PICO_PER_USD, pico_of_usd, usd

if TYPE_CHECKING:
    from orchestrator.core.models import BudgetRequest

BUDGET_ERROR = "BudgetExceeded"

BUDGET_ANSWER_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {
            "type": "object",
            "properties": {"raiseTo": {"type": "number", "exclusiveMinimum": 0}},
            "required": ["raiseTo"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"stop": {"const": True}},
            "required": ["stop"],
            "additionalProperties": False,
        },
    ]
}
"""What a budget request accepts: raise the cost limit to so many dollars, or stop."""


class SessionBudget(CamelModel):
    """``budget`` on the session snapshot: the limits, what counts against them, the pause."""

    max_cost_usd: str | None = None
    max_tokens: int | None = None
    spent_usd: str = "0"
    spent_tokens: int = 0
    paused: bool = False
    request: dict[str, Any] | None = None  # the pending budget question while paused


def budget_document(request: BudgetRequest, where: str = "budget") -> str:
    """The session hash's "budget" field for a request."""
    document: dict[str, Any] = {}
    if request.max_cost_usd is not None:
        document["maxPico"] = str(dollars_to_pico(request.max_cost_usd, f"{where}.maxCostUsd"))
    if request.max_tokens is not None:
        document["maxTokens"] = request.max_tokens
    return json.dumps(document, separators=(",", ":"))


def dollars_to_pico(value: float, where: str) -> int:
    """A JSON number of dollars in whole pico-dollars (rounded down below a pico-dollar)."""
    try:
        return pico_of_usd(value, where)
    except ConfigurationError:
        return int(float(value) * PICO_PER_USD)


def merged_budget(current: str | None, change: BudgetRequest) -> str:
    """PATCH .../budget: the limits given replace the session's; the others stay."""
    document = json.loads(current) if current else {}
    document.update(json.loads(budget_document(change)))
    return json.dumps(document, separators=(",", ":"))


def session_budget(
    budget_json: str | None, pause_json: str | None, counters: dict[str, int]
) -> SessionBudget | None:
    """The snapshot's view of a session's budget fields and cost counters (None: no budget)."""
    if not budget_json:
        return None
    document = json.loads(budget_json)
    max_pico = document.get("maxPico")
    return SessionBudget(
        max_cost_usd=usd(int(max_pico)) if max_pico is not None else None,
        max_tokens=document.get("maxTokens"),
        spent_usd=usd(counters.get("t|pico", 0)) or "0",
        spent_tokens=counters.get("t|prompt", 0) + counters.get("t|completion", 0),
        paused=bool(pause_json),
        request=json.loads(pause_json) if pause_json else None,
    )


def check_raise(budget: SessionBudget | None, raise_to: float, where: str) -> None:
    """A raised cost limit must be above what the session already spent."""
    if budget is None:
        return
    if dollars_to_pico(raise_to, where) <= pico_of_usd(budget.spent_usd, "spent"):
        raise BudgetValueError(
            where,
            f"{raise_to} is not above the ${budget.spent_usd} the session already spent; raise "
            'the budget above it, or answer {"stop": true}',
        )


def exceeded_message(budget: SessionBudget | None, by: str) -> str:
    """The BudgetExceeded error's message, with the spent figures."""
    if budget is None:
        return f"budget exceeded ({by})"
    limits = []
    if budget.max_cost_usd is not None:
        limits.append(f"${budget.spent_usd} spent of a ${budget.max_cost_usd} budget")
    if budget.max_tokens is not None:
        limits.append(f"{budget.spent_tokens} tokens of {budget.max_tokens}")
    return f"budget exceeded: {'; '.join(limits)}; stopped ({by})"
