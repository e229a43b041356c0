"""The LLM planner in process, with a scripted chat model: validation, repair, fallback.
(tests/integration/test_llm_planner.py runs the same paths over real HTTP.)"""

import json

import pytest

from orchestrator.core.errors import RetryableStepError
from orchestrator.core.models import OrchestrateRequest
from orchestrator.engine.facade import Engine
from orchestrator.planning.llm import parse_plan_reply
from orchestrator.planning.service import Planning
from orchestrator.planning.templates import load_templates
from orchestrator.settings import Settings
from tests.support.world import build_world

VALID = {
    "steps": [
        {"id": "look", "title": "Look", "requiredCapabilities": ["web_research"]},
        {
            "id": "write",
            "title": "Write",
            "requiredCapabilities": ["document_creation"],
            "dependsOn": ["look"],
        },
    ]
}
CYCLIC = {
    "steps": [
        {"id": "a", "title": "A", "requiredCapabilities": ["web_research"], "dependsOn": ["b"]},
        {"id": "b", "title": "B", "requiredCapabilities": ["web_research"], "dependsOn": ["a"]},
    ]
}
UNROUTABLE = {"steps": [{"id": "a", "title": "A", "requiredCapabilities": ["time_travel"]}]}


class ScriptedChat:
    model = "scripted"

    def __init__(self, *replies):
        self.replies = list(replies)
        self.calls: list[list[dict]] = []

    def complete(self, messages):
        self.calls.append([dict(m) for m in messages])
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply if isinstance(reply, str) else json.dumps(reply)


def engine_with(world, chat, **settings) -> Engine:
    planning = Planning(Settings(**settings), load_templates([]), chat)
    return Engine(
        world.engine.context, world.router, world.engine.control.outcomes, planning=planning
    )


def submit(engine, **body):
    request = {"goal": "Explain owls", "planner": "llm", **body}
    return engine.submit(OrchestrateRequest.model_validate(request))


def logs(world, sid):
    return world.sessions._logbook.session_entries(sid)


@pytest.fixture
def world(fake_redis):
    return build_world(fake_redis, Settings())


def test_a_valid_plan_is_used_and_the_prompt_lists_the_agents(world):
    chat = ScriptedChat(VALID)
    snapshot = submit(engine_with(world, chat))
    assert snapshot.plan.planner == "llm" and list(snapshot.steps) == ["look", "write"]
    system = chat.calls[0][0]["content"]
    assert "researcher-001: type researcher" in system and "web_research" in system
    assert "Goal: Explain owls" in chat.calls[0][1]["content"]
    assert len(chat.calls) == 1


def test_a_malformed_reply_is_sent_back_with_its_error_and_the_repair_is_used(world):
    chat = ScriptedChat(
        "Sure! Here is the plan: steps...", "```json\n" + json.dumps(VALID) + "\n```"
    )
    snapshot = submit(engine_with(world, chat))
    assert snapshot.plan.planner == "llm" and snapshot.total_tasks == 2
    repair = chat.calls[1]
    assert repair[2] == {"role": "assistant", "content": "Sure! Here is the plan: steps..."}
    assert "not one JSON object" in repair[3]["content"]
    rejected = [e for e in logs(world, snapshot.session_id) if e["message"] == "LLM plan rejected"]
    assert rejected[0]["level"] == "warn" and rejected[0]["data"]["attempt"] == 1


def test_an_unroutable_plan_is_repaired_with_the_known_capabilities_named(world):
    chat = ScriptedChat(UNROUTABLE, VALID)
    snapshot = submit(engine_with(world, chat))
    assert snapshot.plan.planner == "llm"
    assert "time_travel" in chat.calls[1][3]["content"]
    assert "no registered agent" in chat.calls[1][3]["content"]


def test_a_plan_that_stays_cyclic_falls_back_to_the_rule_planner_with_a_warning(world):
    chat = ScriptedChat(CYCLIC)
    snapshot = submit(
        engine_with(world, chat, planner_max_attempts=3), goal="Write a report on owls"
    )
    assert len(chat.calls) == 3
    assert snapshot.plan.planner == "rule" and snapshot.total_tasks >= 2
    entries = logs(world, snapshot.session_id)
    fallback = [e for e in entries if e["message"].startswith("LLM planner failed")]
    assert fallback and fallback[0]["level"] == "warn"
    assert "cycle" in fallback[0]["data"]["reason"] and fallback[0]["data"]["attempts"] == 3
    assert sum(e["message"] == "LLM plan rejected" for e in entries) == 3


def test_an_unreachable_llm_falls_back_at_once_and_says_why(world):
    chat = ScriptedChat(RetryableStepError("LLM API at http://x failed 3 time(s)"))
    snapshot = submit(engine_with(world, chat))
    assert snapshot.plan.planner == "rule" and len(chat.calls) == 1
    fallback = [e for e in logs(world, snapshot.session_id) if "LLM planner failed" in e["message"]]
    assert "failed 3 time(s)" in fallback[0]["data"]["reason"]


def test_auto_asks_the_llm_only_when_no_template_matches(world):
    chat = ScriptedChat(VALID)
    engine = engine_with(world, chat)
    templated = submit(engine, planner="auto", goal="Build a REST API for todos")
    assert templated.plan.template == "rest_api" and chat.calls == []
    assert submit(engine, planner="auto").plan.planner == "llm"


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        ("not json", "not one JSON object"),
        ('{"plan": []}', '"steps" list'),
        ('{"steps": [{"id": "a"}]}', "steps.0.title: Field required"),
        (
            '{"steps": [{"id": "a", "title": "A", "requiredCapabilities": ["x"], "extra": 1}]}',
            "extra",
        ),
    ],
)
def test_reply_parsing_names_what_is_wrong(reply, fragment):
    steps, errors = parse_plan_reply(reply)
    assert steps is None and any(fragment in error for error in errors)


def test_reply_parsing_accepts_a_bare_list_and_a_nested_plan():
    assert parse_plan_reply(json.dumps(VALID["steps"]))[0][1].id == "write"
    assert parse_plan_reply(json.dumps({"plan": VALID}))[0][0].id == "look"
