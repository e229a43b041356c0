"""What sessions spent (orchestrator/core/costs.py): /api/orchestrator/sessions/<id>/cost, one
session's (the session's owner rules: api/auth.py answers 404 for another user's session), and
/api/orchestrator/costs, spending over time grouped by user, agent or model (an admin sees
everyone's, a user only its own)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from flask import Blueprint, jsonify
from pydantic import StringConstraints

from api.auth import principal
from api.body import json_body, query_args
from api.errors import ApiError
from api.operations import BODY, BY_ID, SESSION_ID, STORE, Operation, ok
from api.routes import services
from orchestrator.core.costs import CostReport, SessionCost
from orchestrator.core.models import BudgetRequest, RequestModel, SessionSnapshot

blueprint = Blueprint("costs", __name__, url_prefix="/api/orchestrator")
DAY_MS = 86_400_000
LATEST_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z: later times are not times


class CostsQuery(RequestModel):
    """?groupBy=user|agent|model&since=&until= (epoch ms or ISO 8601; default: the last day)."""

    group_by: Literal["user", "agent", "model"] = "user"
    since: Annotated[str, StringConstraints(max_length=64)] | None = None
    until: Annotated[str, StringConstraints(max_length=64)] | None = None


@blueprint.get("/sessions/<session_id>/cost")
def session_cost(session_id: str):
    """Tokens, money (exact decimal dollars from the price table), CPU and wall time: the
    session's, by agent, by model and a row per step; each model call counted once."""
    cost = services().costs.session(session_id)
    return jsonify(cost.model_dump(mode="json", by_alias=True))


@blueprint.patch("/sessions/<session_id>/budget")
def change_budget(session_id: str):
    """Raise or lower a running session's budget: {"maxCostUsd": dollars, "maxTokens": n}
    (either); the limits not given stay. A session paused on its budget goes on when the new
    one leaves room."""
    change = BudgetRequest.model_validate(json_body())
    snapshot = services().engine.change_budget(session_id, change)
    return jsonify(snapshot.to_json_dict())


@blueprint.get("/costs")
def costs():
    """Spending in whole hours between since and until, grouped by user, agent or model."""
    query = query_args(CostsQuery)
    now_ms = services().engine.now_ms()  # Redis's time, as the workers' hours are
    until_ms = time_ms(query.until, "until") if query.until is not None else now_ms
    since_ms = time_ms(query.since, "since") if query.since is not None else until_ms - DAY_MS
    if since_ms > until_ms:
        raise invalid_query("since", f"since is after until ({query.since!r} > {query.until!r})")
    caller = principal()
    user = None if caller.is_admin else caller.user_id
    report = services().costs.report(query.group_by, since_ms, until_ms, user=user)
    return jsonify(report.model_dump(mode="json", by_alias=True))


def time_ms(value: str, name: str) -> int:
    """``value`` (epoch milliseconds or an ISO 8601 time) in epoch milliseconds."""
    try:
        if value.isdigit():
            parsed = int(value)
        else:
            parsed = int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except (ValueError, OverflowError) as exc:
        raise invalid_query(
            name,
            f"{name} {value!r} is neither epoch milliseconds nor an ISO 8601 "
            "time such as 2026-12-01T00:00:00Z",
        ) from exc
    if not 0 <= parsed <= LATEST_MS:
        raise invalid_query(name, f"{name} {value!r} is out of range (0 to 9999-12-31)")
    return parsed


def invalid_query(name: str, message: str) -> ApiError:
    return ApiError(
        422,
        "validation_error",
        message,
        {"errors": [{"location": f"query.{name}", "message": message, "type": "value_error"}]},
    )


OPERATIONS = (
    Operation(
        "get",
        "/api/orchestrator/sessions/<session_id>/cost",
        "costs.session_cost",
        "What a session spent: tokens, dollars, CPU; by agent, by model, per step",
        "sessions",
        {200: ok(SessionCost)},
        params=(SESSION_ID,),
        errors=(*BY_ID, *STORE),
    ),
    Operation(
        "patch",
        "/api/orchestrator/sessions/<session_id>/budget",
        "costs.change_budget",
        "Raise or lower a running session's budget (a paused one goes on when there is room)",
        "sessions",
        {200: ok(SessionSnapshot)},
        params=(SESSION_ID,),
        body=BudgetRequest,
        errors=(*BY_ID, 409, *BODY, *STORE),
    ),
    Operation(
        "get",
        "/api/orchestrator/costs",
        "costs.costs",
        "Spending over time by user, agent or model (a user sees its own)",
        "sessions",
        {200: ok(CostReport)},
        query=CostsQuery,
        errors=(422, *STORE),
    ),
)
