"""Issue 19 on real workers: with a model configured (the OpenAI wire fake, streaming), the spec's
request runs every step through the model, a step uses a tool, and the snapshot carries each
step's tokens; a 4-turn durable tool loop survives its worker being SIGKILLed, paying each model
turn once and running its non-idempotent tool once."""

from __future__ import annotations

import json
import os
import signal
import uuid
from decimal import Decimal

import pytest
import redis
import requests

from orchestrator.store.keys import Keys
from tests.support.cluster import Cluster, model_cluster, wait_for
from tests.support.http_servers import BUILTIN_ROLE_MARK, builtin_answer
from tests.support.openai_wire import OpenAIWire, WireCall, WireReply, WireRequest
from tests.support.spec import SPEC_ORCHESTRATE_BODY

pytestmark = pytest.mark.integration

PRICES = "asOf: '2026-12-01'\nmodels:\n  wire-model: {input: 0.15, output: 0.6}\n"
# what one call of the fake costs (31 prompt, 12 completion tokens), by hand, in dollars
CALL_USD = Decimal(31) * Decimal("0.15") / 10**6 + Decimal(12) * Decimal("0.6") / 10**6
AGENTS = "planner-001,researcher-001,coder-001,reviewer-001,looper-001"
LOOP_SCRIPT = ("tally", "gated_lookup", "tally")  # then the answer: four model turns


def respond(request: WireRequest) -> WireReply:
    """The model: built-in roles answer in their schema, the coder writes a file first; the
    Looper calls its tools in LOOP_SCRIPT's order, one per turn, then answers."""
    messages = request.body["messages"]
    system = messages[0]["content"]
    done = [m for m in messages if m["role"] == "tool"]
    if system == "You are the Looper.":
        gate = json.loads(messages[1]["content"])["gate"]
        if len(done) < len(LOOP_SCRIPT):
            name = LOOP_SCRIPT[len(done)]
            arguments = (
                {"gate": gate} if name == "gated_lookup" else {"counter": f"{gate}-{len(done)}"}
            )
            return WireReply(
                content=None,
                tool_calls=[WireCall(f"call_{len(done)}", name, json.dumps(arguments))],
            )
        return WireReply(content=f"loop done after {len(done)} tools")
    if BUILTIN_ROLE_MARK in system:
        offered = {tool["function"]["name"] for tool in request.body.get("tools", [])}
        step = json.loads(messages[1]["content"])["step"]
        if (
            "workspace_write" in offered
            and "code_generation" in step["requiredCapabilities"]
            and not done
        ):
            arguments = {"path": f"src/{step['id']}.py", "content": "print('hello')\n"}
            return WireReply(
                content=None,
                tool_calls=[WireCall("call_w", "workspace_write", json.dumps(arguments))],
            )
        return WireReply(content=builtin_answer(request.body))
    return WireReply(content=json.dumps({"output": "ok"}))


@pytest.fixture(scope="module")
def model():
    with OpenAIWire(responder=respond) as wire:
        yield wire


@pytest.fixture(scope="module")
def llm_cluster(redis_server, tmp_path_factory, model):
    prices = tmp_path_factory.mktemp("prices") / "prices.yaml"
    prices.write_text(PRICES)
    logs = tmp_path_factory.mktemp("llm-cluster-logs")
    with model_cluster(redis_server.url, logs, model.url, AGENTS, prices_file=prices) as running:
        yield running


def test_the_spec_request_runs_every_step_through_the_model_with_a_tool_and_tokens(
    llm_cluster, model
):
    submitted = llm_cluster.submit(SPEC_ORCHESTRATE_BODY)
    sid = submitted["sessionId"]
    done = llm_cluster.wait_session(sid)
    assert done["status"] == "completed", done["errors"]
    # every step went through the model: no offline placeholder
    assert all(result["mode"] == "llm" for result in done["results"].values())
    assert all(result["model"] == "wire-model" for result in done["results"].values())
    # every step carries its tokens (the fake counts 31 + 12 per call)
    for step_id, step in done["steps"].items():
        usage = step["usage"]
        assert usage["modelCalls"] >= 1 and usage["replayedCalls"] == 0, step_id
        assert usage["totalTokens"] == 43 * usage["modelCalls"], step_id
        assert usage["byModel"]["wire-model"]["promptTokens"] == 31 * usage["modelCalls"]
    # the coding step called a tool: two model calls, and the file is in the workspace
    coding = [s for s in done["plan"]["steps"] if "code_generation" in s["requiredCapabilities"]]
    assert coding, done["plan"]
    step_id = coding[0]["id"]
    assert done["steps"][step_id]["usage"]["modelCalls"] == 2
    files = redis.Redis.from_url(llm_cluster.redis_url).hgetall(Keys().workspace(sid))
    assert files == {f"src/{step_id}.py".encode(): b"print('hello')\n"}
    tool_logs = [e for e in llm_cluster.logs(sid) if e["message"] == "tool call"]
    assert [(e["taskId"], e["data"]["tool"], e["data"]["ok"]) for e in tool_logs] == [
        (step_id, "workspace_write", True)
    ]
    # and the requests streamed, asking for usage in the last chunk
    goal = SPEC_ORCHESTRATE_BODY["goal"]
    session_requests = [r for r in model.requests if goal in r.body["messages"][1]["content"]]
    assert session_requests and all(r.body["stream"] is True for r in session_requests)
    assert all(r.body["stream_options"] == {"include_usage": True} for r in session_requests)
    # and what it cost is the hand computation from the price table, exactly
    calls = sum(step["usage"]["modelCalls"] for step in done["steps"].values())
    assert Decimal(done["cost"]["usd"]) == calls * CALL_USD == Decimal("0.0000711")
    assert (done["cost"]["promptTokens"], done["cost"]["modelCalls"]) == (31 * calls, calls)
    assert done["cost"]["runs"] == len(done["steps"]) and done["cost"]["cpuSeconds"] > 0
    # each run's worker process peak resident set (Linux): a worker holds tens of MiB
    assert all(step["cost"]["peakRssMb"] > 10 for step in done["steps"].values())
    assert done["cost"]["peakRssMb"] == max(s["cost"]["peakRssMb"] for s in done["steps"].values())
    assert set(done["cost"]["byAgent"]) == {s["agentId"] for s in done["steps"].values()}
    assert Decimal(done["steps"][step_id]["cost"]["usd"]) == 2 * CALL_USD
    cost = requests.get(f"{llm_cluster.api_url}/api/orchestrator/sessions/{sid}/cost", timeout=10)
    assert cost.status_code == 200
    body = cost.json()
    assert body["usd"] == done["cost"]["usd"] and body["prices"]["asOf"] == "2026-12-01"
    assert [row["stepId"] for row in body["steps"]] == [s["id"] for s in done["plan"]["steps"]]
    assert sum(Decimal(row["usd"]) for row in body["steps"]) == Decimal(body["usd"])
    # and the text reached the session's events as step.delta, in coalesced chunks
    texts: dict[str, list[str]] = {}
    for event in session_events(llm_cluster, sid):
        if event["type"] == "step.delta":
            texts.setdefault(event["stepId"], []).append(event["text"])
    assert set(texts) == set(done["steps"])
    for delta_step, pieces in texts.items():
        answer = json.loads("".join(pieces))
        assert answer["summary"] == f"{delta_step} answered by wire-model"
        assert len(pieces) < len(answer["summary"].split()), "not coalesced"


def session_events(cluster: Cluster, sid: str) -> list[dict]:
    """Every event of a finished session's stream, from its start to session.finished."""
    url = f"{cluster.api_url}/api/orchestrator/sessions/{sid}/events"
    events = []
    with requests.get(url, stream=True, timeout=30) as response:
        assert response.status_code == 200
        for line in response.iter_lines(decode_unicode=True):
            if line and line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    assert events[-1]["type"] == "session.finished"
    return events


def test_a_tool_loop_killed_mid_turn_completes_on_redelivery_paying_each_turn_once(
    llm_cluster, model
):
    # Given a 4-turn tool loop whose second tool blocks until the test opens its gate
    gate = uuid.uuid4().hex
    plan = {
        "steps": [
            {
                "id": "L",
                "title": "Loop",
                "requiredCapabilities": ["tool_loop"],
                "parameters": {"gate": gate},
            }
        ]
    }
    sid = llm_cluster.submit({"goal": "durable loop", "plan": plan})["sessionId"]
    client = redis.Redis.from_url(llm_cluster.redis_url)
    first_pid = int(
        wait_for(lambda: client.lindex(f"test:pids:{gate}", 0), 30, what="tool 2 started")
    )

    # When the worker process running it is SIGKILLed inside turn 2's tool
    os.kill(first_pid, signal.SIGKILL)

    # Then the step runs again after the dead run's lease and replays turns 1 and 2
    second_pid = int(wait_for(lambda: client.lindex(f"test:pids:{gate}", 1), 60, what="rerun"))
    assert second_pid != first_pid
    client.lpush(f"test:gate:{gate}", "open")
    done = llm_cluster.wait_session(sid)
    assert done["status"] == "completed", done["errors"]
    output = done["results"][f"{sid}.L"]
    assert output["answer"] == "loop done after 3 tools"
    assert (output["calls"], output["replayed"]) == (4, 2)
    # the model saw each of the four turns once
    turns = [r for r in model.requests if gate in r.body["messages"][1]["content"]]
    assert [len([m for m in r.body["messages"] if m["role"] == "tool"]) for r in turns] == [
        0,
        1,
        2,
        3,
    ]
    # the non-idempotent tool ran once per call, the idempotent one again after the kill
    assert int(client.get(f"test:tally:{gate}-0")) == 1
    assert int(client.get(f"test:tally:{gate}-2")) == 1
    assert client.llen(f"test:pids:{gate}") == 2
    usage = done["steps"]["L"]["usage"]
    assert (usage["modelCalls"], usage["replayedCalls"], usage["totalTokens"]) == (4, 2, 4 * 43)
    assert done["steps"]["L"]["attempts"] == 2
    # each model call was counted once, though two runs used the first two
    assert done["steps"]["L"]["cost"]["modelCalls"] == 4
    assert Decimal(done["steps"]["L"]["cost"]["usd"]) == 4 * CALL_USD
    assert done["steps"]["L"]["cost"]["runs"] >= 1  # the killed run could not count its CPU
    # and the transcript shows the one history both runs followed
    url = f"{llm_cluster.api_url}/api/orchestrator/sessions/{sid}/steps/L/transcript"
    [agent] = requests.get(url, timeout=10).json()["agents"]
    assert agent["agentId"] == "looper-001"
    assert [(c["call"], c["kind"], c.get("tool")) for c in agent["calls"]] == [
        ("c1", "model", None),
        ("c1|t0", "tool", "tally"),
        ("c2", "model", None),
        ("c2|t0", "tool", "gated_lookup"),
        ("c3", "model", None),
        ("c3|t0", "tool", "tally"),
        ("c4", "model", None),
    ]
    assert agent["calls"][-1]["content"] == "loop done after 3 tools"
    assert agent["calls"][3]["result"]["pid"] == second_pid  # the rerun's result was recorded


def test_unknown_tools_and_usage_show_in_the_api_without_secrets(llm_cluster):
    response = requests.get(f"{llm_cluster.api_url}/api/orchestrator/agents/looper-001", timeout=10)
    assert response.status_code == 200
    assert response.json()["capabilities"][0]["tools"] == ["tally", "gated_lookup"]
    assert not response.json().get("missingTools")


def test_metrics_totals_equal_the_apis(llm_cluster):
    """/metrics parses with Prometheus' parser and its token and money totals are the sums of
    the sessions' costs (this module's sessions are the only ones on its Redis)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{llm_cluster.api_url}/metrics", timeout=10).text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    tokens = families["meowstik_llm_tokens"].samples
    money = families["meowstik_cost_usd"].samples
    listed = requests.get(f"{llm_cluster.api_url}/api/orchestrator/sessions", timeout=10).json()
    costs = [
        requests.get(
            f"{llm_cluster.api_url}/api/orchestrator/sessions/{s['sessionId']}/cost"
        ).json()
        for s in listed["sessions"]
    ]
    prompt = sum(s.value for s in tokens if s.labels["kind"] == "prompt")
    assert prompt == sum(c["promptTokens"] for c in costs) > 0
    assert Decimal(str(sum(s.value for s in money))).quantize(Decimal("1e-9")) == sum(
        Decimal(c["usd"]) for c in costs
    ).quantize(Decimal("1e-9"))
    cpu = families["meowstik_step_cpu_seconds"].samples
    assert {s.labels["agent"] for s in cpu} >= {"looper-001", "coder-001"}
