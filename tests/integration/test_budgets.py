"""Issue 20's budgets on real workers against the OpenAI wire fake (31 prompt + 12 completion
tokens a call, priced so a call costs $0.00001185): a session whose budget is smaller than its plan
needs pauses as an operator-input request with reason budget, holding no slot; a raise resumes it
where it stopped (no model call made twice); stop fails it with BudgetExceeded; ten parallel
steps under one budget overshoot it by at most one call; PATCH and hostile input."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import pytest
import requests

from tests.support.cluster import model_cluster, wait_for
from tests.support.openai_wire import OpenAIWire, WireReply, WireRequest

pytestmark = pytest.mark.integration

PRICES = "asOf: '2026-12-01'\nmodels:\n  wire-model: {input: 0.15, output: 0.6}\n"
CALL_USD = Decimal(31) * Decimal("0.15") / 10**6 + Decimal(12) * Decimal("0.6") / 10**6


class Model:
    """The fake's answers, and every Chatter request it served, by session goal."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.asked: list[dict] = []

    def respond(self, request: WireRequest) -> WireReply:
        question = json.loads(request.body["messages"][1]["content"])
        with self.lock:
            self.asked.append(question)
        return WireReply(content=f"answer {question.get('turn')}")

    def questions(self, tag: str) -> list[dict]:
        with self.lock:
            return [q for q in self.asked if q.get("tag") == tag]


@pytest.fixture(scope="module")
def model():
    return Model()


@pytest.fixture(scope="module")
def cluster(redis_server, tmp_path_factory, model):
    prices = tmp_path_factory.mktemp("prices") / "prices.yaml"
    prices.write_text(PRICES)
    logs = tmp_path_factory.mktemp("budget-cluster-logs")
    with OpenAIWire(responder=model.respond) as wire:
        with model_cluster(
            redis_server.url, logs, wire.url, "chatter-001", prices_file=prices, concurrency=4
        ) as running:
            yield running


def chats(tag: str, count: int, calls: int) -> dict:
    return {
        "steps": [
            {
                "id": f"C{i}",
                "title": f"Chat {i}",
                "requiredCapabilities": ["chat"],
                "parameters": {"calls": calls, "tag": tag, "step": i},
            }
            for i in range(count)
        ]
    }


def api(cluster, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{cluster.api_url}{path}", timeout=10, **kwargs)


def wait_status(cluster, sid: str, status: str) -> dict:
    return wait_for(lambda: (s := cluster.session(sid))["status"] == status and s, 60, what=status)


def chatter_load(cluster) -> int:
    return cluster.agents()["chatter-001"]["currentLoad"]


def test_a_budget_too_small_pauses_holding_nothing_and_a_raise_finishes_it_calls_once(
    cluster, model
):
    budget = 2.5 * float(CALL_USD)  # room for two calls of the four
    body = {"goal": "budget raise", "plan": chats("raise", 1, 4), "budget": {"maxCostUsd": budget}}
    sid = cluster.submit(body)["sessionId"]

    paused = wait_status(cluster, sid, "waiting_for_input")
    request = paused["steps"]["C0"]["inputRequest"]
    assert request["reason"] == "budget" and request["onTimeout"] == "stop"
    assert Decimal(paused["budget"]["spentUsd"]) == 2 * CALL_USD
    assert paused["budget"]["paused"] and "raise" in request["question"]
    assert chatter_load(cluster) == 0
    assert len(model.questions("raise")) == 2

    answered = api(
        cluster,
        "POST",
        f"/api/orchestrator/sessions/{sid}/input",
        json={"stepId": "C0", "value": {"raiseTo": 0.001}},
    )
    assert answered.status_code == 200, answered.text

    done = cluster.wait_session(sid)
    assert done["status"] == "completed", done["errors"]
    assert Decimal(done["cost"]["usd"]) == 4 * CALL_USD > Decimal(str(budget))
    assert [q["turn"] for q in model.questions("raise")] == [0, 1, 2, 3]  # none asked twice
    output = done["results"][f"{sid}.C0"]
    assert output == {"answers": [f"answer {t}" for t in range(4)], "replayed": 2}
    assert done["steps"]["C0"]["attempts"] == 1
    messages = [entry["message"] for entry in cluster.logs(sid)]
    assert messages.count("Budget reached") == 1 and "Budget raised" in messages


def test_a_budget_answered_with_stop_fails_the_session_with_budget_exceeded(cluster, model):
    body = {"goal": "budget stop", "plan": chats("stop", 1, 3), "budget": {"maxCostUsd": 1e-5}}
    sid = cluster.submit(body)["sessionId"]
    wait_status(cluster, sid, "waiting_for_input")
    # a raise to less than was spent is refused, saying why and where
    low = api(
        cluster,
        "POST",
        f"/api/orchestrator/sessions/{sid}/input",
        json={"stepId": "C0", "value": {"raiseTo": 0.000001}},
    )
    assert low.status_code == 422, low.text
    assert low.json()["error"]["details"]["errors"][0]["location"] == "value.raiseTo"
    stop = api(
        cluster,
        "POST",
        f"/api/orchestrator/sessions/{sid}/input",
        json={"stepId": "C0", "value": {"stop": True}},
    )
    assert stop.status_code == 200, stop.text
    assert stop.json()["status"] == "failed"
    done = cluster.session(sid)
    [error] = done["errors"]
    assert error["errorType"] == "BudgetExceeded" and error["stepId"] == "C0"
    assert f"${CALL_USD.normalize():f} spent of a $0.00001 budget" in error["message"]
    assert len(model.questions("stop")) == 1


def test_ten_parallel_steps_overshoot_by_at_most_one_call_and_patch_resumes_them(cluster, model):
    budget = Decimal("4.5") * CALL_USD
    body = {
        "goal": "parallel",
        "plan": chats("parallel", 10, 1),
        "budget": {"maxCostUsd": float(budget)},
    }
    sid = cluster.submit(body)["sessionId"]
    paused = wait_status(cluster, sid, "waiting_for_input")
    wait_for(
        lambda: all(
            s["status"] in ("completed", "waiting_for_input")
            for s in cluster.session(sid)["steps"].values()
        ),
        60,
        what="every step completed or parked",
    )
    paused = cluster.session(sid)
    spent = Decimal(paused["budget"]["spentUsd"])
    assert spent <= budget + CALL_USD
    completed = [k for k, s in paused["steps"].items() if s["status"] == "completed"]
    assert spent == len(completed) * CALL_USD == len(model.questions("parallel")) * CALL_USD
    assert chatter_load(cluster) == 0

    # raising it with PATCH resumes the parked steps; each is asked once in all
    patched = api(
        cluster, "PATCH", f"/api/orchestrator/sessions/{sid}/budget", json={"maxCostUsd": 1}
    )
    assert patched.status_code == 200, patched.text
    done = cluster.wait_session(sid)
    assert done["status"] == "completed", done["errors"]
    assert sorted(q["step"] for q in model.questions("parallel")) == list(range(10))
    assert Decimal(done["cost"]["usd"]) == 10 * CALL_USD


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({}, "body"),
        ({"maxCostUsd": -1}, "body.maxCostUsd"),
        ({"maxCostUsd": "ten"}, "body.maxCostUsd"),
        ({"maxTokens": 0}, "body.maxTokens"),
        ({"maxCostUsd": 1, "extra": True}, "body.extra"),
    ],
)
def test_hostile_budget_changes_get_clear_4xx(cluster, body, location):
    sid = cluster.submit({"goal": "hostile", "plan": chats("hostile", 1, 1)})["sessionId"]
    response = api(cluster, "PATCH", f"/api/orchestrator/sessions/{sid}/budget", json=body)
    assert response.status_code == 422, response.text
    locations = [e["location"] for e in response.json()["error"]["details"]["errors"]]
    assert location in locations
    missing = api(cluster, "PATCH", "/api/orchestrator/sessions/nope/budget", json={"maxTokens": 5})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "session_not_found"
    raw = api(
        cluster,
        "PATCH",
        f"/api/orchestrator/sessions/{sid}/budget",
        data="{",
        headers={"Content-Type": "application/json"},
    )
    assert raw.status_code == 400 and "error" in raw.json()
    cluster.wait_session(sid)
    finished = api(
        cluster, "PATCH", f"/api/orchestrator/sessions/{sid}/budget", json={"maxTokens": 5}
    )
    assert finished.status_code == 409 and finished.json()["error"]["code"] == "session_finished"
