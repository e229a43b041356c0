"""A step's transcript (GET .../sessions/<id>/steps/<step id>/transcript): what its durable tool
loop recorded, in order, per agent; owners, unknown sessions and steps, hostile ids."""

from __future__ import annotations

import json

import pytest

from api import create_app
from orchestrator.core.builtin_tools import BUILTIN_TOOLS
from orchestrator.core.fleet import DEFAULT_AGENTS
from orchestrator.core.models import PlanStep
from orchestrator.core.steps import StepInput
from orchestrator.core.tools import ToolRegistry
from orchestrator.core.transcripts import build_transcript
from orchestrator.settings import Settings
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.keys import Keys
from orchestrator.store.turns import TurnJournal
from tests.support.openai_wire import OpenAIWire, WireCall, WireReply
from tests.support.recording import RecordingDispatcher
from workers.executors.model_client import ModelClient
from workers.executors.tool_loop import DurableModel

ALICE = "alice-token-0123456789"
BOB = "bob-token-0123456789ab"
TOKENS = f"alice:user:{ALICE},bob:user:{BOB}"
KEYS = Keys("meowstik")
KEY = "sk-transcript-secret-0123"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(any_redis):
    registry = AgentRegistry(any_redis, KEYS)
    for agent in DEFAULT_AGENTS:
        registry.register(agent, worker="w1", now_ms=0, alive_ms=10**13)
    app = create_app(
        Settings(api_tokens=TOKENS), redis_client=any_redis, dispatcher=RecordingDispatcher()
    )
    return app.test_client()


@pytest.fixture
def sid(client) -> str:
    plan = {"steps": [{"id": "a", "title": "a", "requiredCapabilities": ["code_generation"]}]}
    reply = client.post(
        "/api/orchestrator/orchestrate", json={"goal": "g", "plan": plan}, headers=auth(ALICE)
    )
    assert reply.status_code == 202
    return reply.get_json()["sessionId"]


def run_loop(redis_client, sid: str, agent_id: str = "coder-001") -> None:
    """A two-turn loop (list the workspace, then answer) recorded as a worker records it."""
    step = StepInput(
        session_id=sid,
        step_id="a",
        job_id=f"{sid}.a",
        goal="g",
        step=PlanStep(id="a", title="a", required_capabilities=["code_generation"]),
        agent_id=agent_id,
        attempt=1,
    )
    script = (
        WireReply(content="Looking.", tool_calls=[WireCall("call_9", "ghost_tool", "{}")]),
        WireReply(content="Nothing there."),
    )
    with OpenAIWire(*script) as wire:
        client = ModelClient(wire.url, KEY, "m-1", 5.0, 0, sleep=lambda _s: None)
        journal = TurnJournal(redis_client, KEYS).bound(sid, "a", agent_id)
        model = DurableModel(
            client,
            ToolRegistry(BUILTIN_TOOLS),
            journal,
            step,
            allowed_tools=["workspace_list"],
            max_turns=4,
            now_ms=iter(range(1_700_000_000_000, 1_700_000_001_000, 10)).__next__,
        )
        model.chat([{"role": "user", "content": "list files"}], tools=["workspace_list"])


def transcript(client, sid: str, step_id: str = "a", token: str = ALICE):
    return client.get(
        f"/api/orchestrator/sessions/{sid}/steps/{step_id}/transcript", headers=auth(token)
    )


def test_the_transcript_lists_model_and_tool_calls_in_order_without_the_key(client, sid, any_redis):
    run_loop(any_redis, sid)
    reply = transcript(client, sid)
    assert reply.status_code == 200, reply.get_data(as_text=True)
    body = reply.get_json()
    assert (body["sessionId"], body["stepId"]) == (sid, "a")
    [agent] = body["agents"]
    assert agent["agentId"] == "coder-001"
    calls = agent["calls"]
    assert [(c["call"], c["kind"]) for c in calls] == [
        ("c1", "model"),
        ("c1|t0", "tool"),
        ("c2", "model"),
    ]
    first, tool_call, last = calls
    assert first["prompt"] == [{"role": "user", "content": "list files"}]
    assert first["toolsOffered"] == ["workspace_list"]
    assert first["content"] == "Looking." and first["toolCalls"][0]["name"] == "ghost_tool"
    assert first["usage"] == {"promptTokens": 31, "completionTokens": 12, "totalTokens": 43}
    assert first["at"].startswith("2023-11-14T22:13:20")
    assert tool_call["tool"] == "ghost_tool" and tool_call["ok"] is False
    assert tool_call["result"]["error"]["type"] == "unknown_tool"
    assert last["content"] == "Nothing there." and "prompt" not in last
    assert agent["usage"]["totalTokens"] == 86
    assert KEY not in reply.get_data(as_text=True)


def test_a_step_without_model_calls_has_an_empty_transcript(client, sid):
    reply = transcript(client, sid)
    assert reply.status_code == 200
    assert reply.get_json()["agents"] == []


def test_pending_calls_show_as_running_or_waiting_for_the_operator():
    entries = {
        "a|x-1|c1": {"kind": "model", "reply": {"content": None, "toolCalls": []}, "at": 5},
        "a|x-1|c1|t0|started": {"at": 6},
        "a|x-1|c1|t1|started": {"at": 7},
        "a|x-1|c1|t1|asked": {"kind": "unrecorded", "at": 8},
        "a|x-1|c2|t0|asked": {"kind": "tool", "at": 9},
        "ab|x-1|c1": {"kind": "model", "reply": {}},  # another step sharing the prefix
    }
    [agent] = build_transcript("s", "a", entries).agents
    assert [(c.call, c.kind, c.state) for c in agent.calls] == [
        ("c1", "model", None),
        ("c1|t0", "pending", "running"),
        ("c1|t1", "pending", "waiting_for_operator"),
        ("c2|t0", "pending", "waiting_for_operator"),
    ]


def test_another_users_session_and_unknown_ids_answer_404_in_json(client, sid):
    assert transcript(client, sid, token=BOB).status_code == 404
    unknown = transcript(client, "orch-nope")
    assert unknown.status_code == 404
    assert unknown.get_json()["error"]["code"] == "session_not_found"
    missing = transcript(client, sid, step_id="zz")
    assert missing.status_code == 404
    error = missing.get_json()["error"]
    assert error["code"] == "step_not_found" and "its steps: a" in error["message"]


@pytest.mark.parametrize("step_id", ["*", "a*", "%2A", "a%7Cb", "%00", "x" * 5000, "é", "[a]"])
def test_hostile_step_ids_answer_json_errors(client, sid, step_id):
    reply = transcript(client, sid, step_id=step_id)
    assert 400 <= reply.status_code < 500
    assert reply.is_json and "error" in reply.get_json()
    json.dumps(reply.get_json())


def test_the_cost_route_answers_for_the_owner_only_and_404s_in_json(client, sid, any_redis):
    run_loop(any_redis, sid)
    reply = client.get(f"/api/orchestrator/sessions/{sid}/cost", headers=auth(ALICE))
    assert reply.status_code == 200
    body = reply.get_json()
    assert (body["modelCalls"], body["promptTokens"]) == (2, 62)
    assert body["usd"] is None and body["uncostedCalls"] == 2  # m-1 has no price
    assert [row["stepId"] for row in body["steps"]] == ["a"]
    assert body["prices"]["source"].startswith("built-in examples")
    assert (
        client.get(f"/api/orchestrator/sessions/{sid}/cost", headers=auth(BOB)).status_code == 404
    )
    missing = client.get("/api/orchestrator/sessions/orch-nope/cost", headers=auth(ALICE))
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "session_not_found"
