"""The built-in agents with a model: role prompts built from the step, structured answers
validated with one repair round, the planner's sub-plans over the fleet, and offline unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from orchestrator.core.chat import ChatOutcome, ModelReply, ToolCall
from orchestrator.core.errors import PermanentStepError
from orchestrator.core.models import Capability, PlanStep
from orchestrator.core.steps import StepInput
from workers.agents.base import Agent
from workers.agents.builtin import BUILTIN_AGENTS, CoderAgent
from workers.agents.builtin.offline import OfflineAgent

GOAL = "Research and implement user authentication"
CONTEXT = {"framework": "express", "database": "postgresql"}
DESCRIPTION = "Compare session cookies with JWT for the login flow"
DEPENDENCY = {"step-1": {"findings": ["JWT is stateless", "cookies need a session store"]}}
MODEL = "test-model-7b"
FLEET = ["code_generation", "code_review", "task_decomposition", "web_research"]

VALID: dict[str, dict[str, Any]] = {
    "planner": {
        "summary": "Planned the login flow.",
        "steps": [
            {"title": "Research", "description": "Compare options", "capability": "web_research"},
            {"title": "Build", "capability": "code_generation", "dependsOn": [1]},
        ],
        "subPlan": False,
    },
    "researcher": {
        "summary": "JWT fits a stateless API.",
        "findings": [{"claim": "JWT needs no session store", "confidence": "high"}],
        "openQuestions": ["How are tokens revoked?"],
    },
    "coder": {
        "summary": "Wrote the login handler.",
        "files": [{"path": "src/login.js", "language": "javascript", "content": "export {}\n"}],
        "notes": ["Not run."],
    },
    "reviewer": {
        "summary": "Two issues to fix.",
        "verdict": "request_changes",
        "issues": [{"severity": "major", "description": "No rate limit on login"}],
    },
}
AGENTS: dict[str, Agent] = {agent.definition.type: agent for agent in BUILTIN_AGENTS}
CAPABILITY = {
    "planner": "task_decomposition",
    "researcher": "web_research",
    "coder": "code_generation",
    "reviewer": "code_review",
}
ROLES = sorted(VALID)


def outcome(
    content: str | None, messages: Sequence[dict[str, Any]], *, tool_call: bool = False
) -> ChatOutcome:
    """What the runtime's model returns: the reply, and the conversation ending with it."""
    calls = [ToolCall("call-1", "search", "{}")] if tool_call else []
    reply = ModelReply(content, tool_calls=calls, finish_reason="stop", usage=None, model=MODEL)
    conversation = [*(dict(m) for m in messages), reply.assistant_message()]
    return ChatOutcome(content=content, reply=reply, messages=conversation)


@dataclass
class FakeModel:
    """A StepModel answering from a script, recording every chat it was asked."""

    answers: list[str | None]
    model: str = MODEL
    chats: list[dict[str, Any]] = field(default_factory=list)
    tool_call_first: bool = False  # the first reply also calls a tool no one offered

    def chat(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[str] = (),
        response_format: dict[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stream: bool | None = None,
    ) -> ChatOutcome:
        self.chats.append(
            {
                "messages": [dict(m) for m in messages],
                "tools": list(tools),
                "responseFormat": response_format,
            }
        )
        if not self.answers:
            raise AssertionError("the model was asked more often than scripted")
        tool_call = self.tool_call_first and len(self.chats) == 1
        return outcome(self.answers.pop(0), messages, tool_call=tool_call)


def make_input(
    role: str,
    llm: FakeModel | None,
    *,
    step_id: str = "step-2",
    fleet: Callable[[], list[str]] | None = None,
    subtask_ids: tuple[str, ...] = (),
    decompositions: int = 0,
    dependencies: dict[str, Any] | None = None,
    capability: str | None = None,
) -> StepInput:
    dependencies = dict(DEPENDENCY) if dependencies is None else dependencies
    step = PlanStep(
        id=step_id,
        title="Design the login flow",
        description=DESCRIPTION,
        required_capabilities=[capability or CAPABILITY[role]],
        depends_on=list(dependencies),
        parameters={"subject": "user authentication"},
    )
    return StepInput(
        session_id="orch-1",
        step_id=step_id,
        job_id=f"orch-1.{step_id}",
        goal=GOAL,
        step=step,
        agent_id=AGENTS[role].definition.id,
        attempt=1,
        initial_context=CONTEXT,
        shared_state={"team": "core"},
        dependencies=dependencies,
        subtask_ids=subtask_ids,
        decompositions=decompositions,
        llm=llm,
        fleet_capabilities=fleet,
    )


def user_document(chat: dict[str, Any]) -> dict[str, Any]:
    return json.loads(chat["messages"][1]["content"])


@pytest.mark.parametrize("role", ROLES)
def test_prompt_holds_the_goal_step_context_and_dependency_outputs(role: str) -> None:
    model = FakeModel([json.dumps(VALID[role])])

    AGENTS[role].run(make_input(role, model))

    (chat,) = model.chats
    system, user = chat["messages"]
    assert (system["role"], user["role"]) == ("system", "user")
    assert AGENTS[role].definition.name in system["content"]
    assert '"summary"' in system["content"]  # the answer's schema
    document = user_document(chat)
    assert document["goal"] == GOAL
    assert document["step"]["description"] == DESCRIPTION
    assert document["initialContext"] == CONTEXT
    assert document["sharedState"] == {"team": "core"}
    assert document["dependencies"] == DEPENDENCY
    assert "operatorInput" not in document and "subtaskOutputs" not in document
    assert chat["responseFormat"] == {"type": "json_object"}
    definition = AGENTS[role].definition
    named = [
        t
        for c in definition.capabilities
        if c.name in make_input(role, model).step.required_capabilities
        for t in c.tools
    ]
    assert chat["tools"] == list(dict.fromkeys(named)) and chat["tools"]  # the fleet's tools


@pytest.mark.parametrize("role", ROLES)
def test_valid_answer_becomes_the_structured_output(role: str) -> None:
    model = FakeModel([json.dumps(VALID[role])])

    result = AGENTS[role].run(make_input(role, model))

    output = result.output
    assert result.subtasks == []
    assert output["mode"] == "llm"
    assert output["model"] == MODEL
    assert (output["agentId"], output["stepId"]) == (AGENTS[role].definition.id, "step-2")
    assert output["summary"] == VALID[role]["summary"]
    assert output["inputsUsed"] == ["step-1"]
    assert "note" not in output
    for key, value in VALID[role].items():
        if key != "steps":
            assert output[key] == value, key
    json.dumps(output)


def test_output_fields_are_normalised_by_the_schema() -> None:
    answer = {**VALID["planner"], "unasked": "dropped"}
    model = FakeModel([json.dumps(answer)])

    output = AGENTS["planner"].run(make_input("planner", model)).output

    assert "unasked" not in output
    assert output["steps"] == [
        {
            "title": "Research",
            "description": "Compare options",
            "capability": "web_research",
            "dependsOn": [],
        },
        {"title": "Build", "description": "", "capability": "code_generation", "dependsOn": [1]},
    ]


def test_fenced_json_is_accepted() -> None:
    fenced = "Here it is:\n```json\n" + json.dumps(VALID["researcher"]) + "\n```"
    model = FakeModel([fenced])

    output = AGENTS["researcher"].run(make_input("researcher", model)).output

    assert output["findings"] == VALID["researcher"]["findings"]
    assert len(model.chats) == 1


def test_invalid_answer_gets_exactly_one_repair_round_quoting_the_error() -> None:
    wrong = {**VALID["reviewer"], "verdict": "looks fine"}
    model = FakeModel([json.dumps(wrong), json.dumps(VALID["reviewer"])])

    output = AGENTS["reviewer"].run(make_input("reviewer", model)).output

    assert output["verdict"] == "request_changes"
    first, second = model.chats
    assert second["messages"][:2] == first["messages"]
    assert second["messages"][2] == {"role": "assistant", "content": json.dumps(wrong)}
    repair = second["messages"][3]
    assert repair["role"] == "user"
    assert "verdict" in repair["content"] and "approve" in repair["content"]
    assert '"request_changes"' in repair["content"]  # the schema is quoted
    assert second["responseFormat"] == {"type": "json_object"}


def test_repair_sends_the_answer_back_as_text_without_unanswered_tool_calls() -> None:
    model = FakeModel([None, json.dumps(VALID["coder"])], tool_call_first=True)

    output = AGENTS["coder"].run(make_input("coder", model)).output

    assert output["files"] == VALID["coder"]["files"]
    assert model.chats[1]["messages"][2] == {"role": "assistant", "content": ""}
    assert "held no text" in model.chats[1]["messages"][3]["content"]


def test_not_json_then_valid_is_repaired() -> None:
    model = FakeModel(["I think JWT is best.", json.dumps(VALID["researcher"])])

    output = AGENTS["researcher"].run(make_input("researcher", model)).output

    assert output["mode"] == "llm" and len(model.chats) == 2
    assert "not one JSON object" in model.chats[1]["messages"][-1]["content"]


def test_invalid_twice_is_a_permanent_error_with_the_errors() -> None:
    bad_file = {"path": "../etc/passwd", "language": "text", "content": ""}
    wrong = {**VALID["coder"], "files": [bad_file]}
    model = FakeModel([json.dumps(wrong), None])

    with pytest.raises(PermanentStepError) as caught:
        AGENTS["coder"].run(make_input("coder", model))

    assert len(model.chats) == 2
    assert MODEL in caught.value.message and "repair" in caught.value.message
    assert caught.value.details["errors"] == ["the reply held no text; answer with one JSON object"]
    assert "files.0.path" in model.chats[1]["messages"][-1]["content"]


def test_tools_are_those_of_the_steps_capabilities() -> None:
    base = CoderAgent()
    capabilities = [
        Capability(name=c.name, tools=["run_tests"] if c.name == "testing" else ["lint"])
        for c in base.definition.capabilities
    ]

    class ToolCoder(CoderAgent):
        definition = base.definition.model_copy(update={"capabilities": capabilities})

    model = FakeModel([json.dumps(VALID["coder"])])

    ToolCoder().run(make_input("coder", model, capability="testing"))

    assert model.chats[0]["tools"] == ["run_tests"]


def test_operator_input_and_subtask_outputs_are_in_the_prompt() -> None:
    model = FakeModel([json.dumps(VALID["researcher"])])
    dependencies = {**DEPENDENCY, "step-2.a": {"done": "a"}}
    step_input = replace(
        make_input("researcher", model, dependencies=dependencies, subtask_ids=("step-2.a",)),
        input_provided=True,
        operator_input={"approved": True},
    )

    output = AGENTS["researcher"].run(step_input).output

    document = user_document(model.chats[0])
    assert document["operatorInput"] == {"approved": True}
    assert document["subtaskOutputs"] == {"step-2.a": {"done": "a"}}
    assert document["dependencies"] == DEPENDENCY
    assert output["subtasksUsed"] == ["step-2.a"]


def sub_plan_answer(*capabilities: str) -> str:
    steps = [
        {
            "title": f"Do {c}",
            "description": f"Use {c}",
            "capability": c,
            "dependsOn": [1] if i else [],
        }
        for i, c in enumerate(capabilities)
    ]
    return json.dumps({"summary": "Split it.", "steps": steps, "subPlan": True})


def test_planner_returns_a_sub_plan_over_the_fleets_capabilities() -> None:
    model = FakeModel([sub_plan_answer("web_research", "code_generation", "code_review")])

    result = AGENTS["planner"].run(make_input("planner", model, fleet=lambda: list(FLEET)))

    system = model.chats[0]["messages"][0]["content"]
    assert ", ".join(FLEET) in system and "subPlan" in system
    steps = [PlanStep.model_validate(document) for document in result.subtasks]
    assert [s.id for s in steps] == ["part-1", "part-2", "part-3"]
    assert [s.required_capabilities for s in steps] == [
        ["web_research"],
        ["code_generation"],
        ["code_review"],
    ]
    assert [s.depends_on for s in steps] == [[], ["part-1"], ["part-1"]]
    assert steps[1].title == "Do code_generation" and steps[1].description == "Use code_generation"
    assert result.output["subPlan"] is True and result.output["mode"] == "llm"


def test_sub_plan_ids_are_deterministic() -> None:
    runs = [
        AGENTS["planner"].run(
            make_input(
                "planner",
                FakeModel([sub_plan_answer("web_research", "code_review")]),
                fleet=lambda: list(FLEET),
            )
        )
        for _ in range(2)
    ]

    assert runs[0].subtasks == runs[1].subtasks
    assert [d["id"] for d in runs[0].subtasks] == ["part-1", "part-2"]


def test_capability_outside_the_fleet_triggers_the_repair_round() -> None:
    model = FakeModel(
        [sub_plan_answer("web_research", "time_travel"), sub_plan_answer("web_research")]
    )

    result = AGENTS["planner"].run(make_input("planner", model, fleet=lambda: list(FLEET)))

    assert len(model.chats) == 2
    repair = model.chats[1]["messages"][-1]["content"]
    assert "steps.1.capability" in repair and "time_travel" in repair
    assert [d["requiredCapabilities"] for d in result.subtasks] == [["web_research"]]


def test_dependencies_must_name_earlier_steps() -> None:
    answer = json.loads(sub_plan_answer("web_research", "code_review"))
    answer["steps"][0]["dependsOn"] = [2]
    model = FakeModel([json.dumps(answer), json.dumps(answer)])

    with pytest.raises(PermanentStepError) as caught:
        AGENTS["planner"].run(make_input("planner", model, fleet=lambda: list(FLEET)))

    assert "earlier steps" in caught.value.details["errors"][0]


def test_planner_does_not_decompose_without_the_fleet() -> None:
    model = FakeModel([sub_plan_answer("web_research", "code_review")])

    result = AGENTS["planner"].run(make_input("planner", model, fleet=None))

    assert result.subtasks == []
    assert result.output["subPlan"] is False
    assert len(result.output["steps"]) == 2
    assert "not available" in model.chats[0]["messages"][0]["content"]


@pytest.mark.parametrize(
    ("decompositions", "subtask_ids"), [(1, ()), (0, ("step-2.part-1",)), (2, ("step-2.x",))]
)
def test_planner_never_decomposes_again(decompositions: int, subtask_ids: tuple[str, ...]) -> None:
    model = FakeModel([sub_plan_answer("web_research", "code_review")])
    dependencies = {**DEPENDENCY, **{sid: {"summary": f"{sid} done"} for sid in subtask_ids}}
    step_input = make_input(
        "planner",
        model,
        fleet=lambda: list(FLEET),
        decompositions=decompositions,
        subtask_ids=subtask_ids,
        dependencies=dependencies,
    )

    result = AGENTS["planner"].run(step_input)

    assert result.subtasks == []
    assert result.output["subPlan"] is False


def test_planner_sums_up_its_subtasks_outputs_after_they_ran() -> None:
    final = {"summary": "Research and code are done; review found nothing.", "steps": []}
    model = FakeModel([json.dumps(final)])
    subtasks = {"step-2.part-1": {"summary": "found"}, "step-2.part-2": {"summary": "built"}}
    step_input = make_input(
        "planner",
        model,
        fleet=lambda: list(FLEET),
        decompositions=1,
        subtask_ids=tuple(subtasks),
        dependencies={**DEPENDENCY, **subtasks},
    )

    result = AGENTS["planner"].run(step_input)

    system = model.chats[0]["messages"][0]["content"]
    assert "subtaskOutputs" in system and "subPlan must be false" in system
    assert user_document(model.chats[0])["subtaskOutputs"] == subtasks
    assert result.output["summary"] == final["summary"]
    assert result.output["subtasksUsed"] == list(subtasks)
    assert result.subtasks == []


@pytest.mark.parametrize("role", ROLES)
def test_without_a_model_the_output_is_exactly_the_offline_one(role: str) -> None:
    agent = AGENTS[role]
    assert isinstance(agent, OfflineAgent)
    step_input = make_input(role, None, fleet=lambda: list(FLEET))

    output = agent.run(step_input).output
    direct = OfflineAgent.run(agent, step_input).output

    assert output["mode"] == "offline" and "MEOWSTIK_LLM_BASE_URL" in output["note"]
    assert "model" not in output
    assert json.dumps(output, sort_keys=True) == json.dumps(direct, sort_keys=True)
