"""The built-in offline agents: honest, JSON-ready outputs derived only from the step input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.core.fleet import DEFAULT_AGENTS
from orchestrator.core.models import PlanStep
from orchestrator.core.steps import StepInput
from orchestrator.planning.rules import plan_goal
from workers.agents.base import Agent
from workers.agents.builtin import (
    BUILTIN_AGENTS,
    CoderAgent,
    PlannerAgent,
    ResearcherAgent,
    ReviewerAgent,
)

GOAL = "Research and implement user authentication"
CONTEXT = {"framework": "express", "database": "postgresql"}
AGENTS_BY_TYPE: dict[str, Agent] = {agent.definition.type: agent for agent in BUILTIN_AGENTS}


def make_input(
    capability: str,
    *,
    agent: Agent,
    step_id: str = "step-2",
    title: str = "Research authentication methods",
    description: str = "",
    dependencies: dict[str, Any] | None = None,
    initial_context: dict[str, Any] | None = None,
    shared_state: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    depends_on: list[str] | None = None,
) -> StepInput:
    dependencies = {} if dependencies is None else dependencies
    step = PlanStep(
        id=step_id,
        title=title,
        description=description,
        required_capabilities=[capability],
        depends_on=list(dependencies) if depends_on is None else depends_on,
        parameters=parameters or {},
    )
    return StepInput(
        session_id="orch-1",
        step_id=step_id,
        job_id=f"orch-1.{step_id}",
        goal=GOAL,
        step=step,
        agent_id=agent.definition.id,
        attempt=1,
        initial_context=CONTEXT if initial_context is None else initial_context,
        shared_state=shared_state or {},
        dependencies=dependencies,
    )


def run(agent: Agent, step_input: StepInput) -> dict[str, Any]:
    return agent.run(step_input).output


def offline_output(step_id: str, **fields: Any) -> dict[str, Any]:
    return {"mode": "offline", "agentId": "x", "stepId": step_id, "summary": "Did it.", **fields}


def test_builtin_agents_are_the_default_fleet_one_instance_each() -> None:
    assert [agent.definition for agent in BUILTIN_AGENTS] == list(DEFAULT_AGENTS)
    assert [type(agent) for agent in BUILTIN_AGENTS] == [
        PlannerAgent,
        ResearcherAgent,
        CoderAgent,
        ReviewerAgent,
    ]


EVERY_CAPABILITY = [
    (agent.type, capability)
    for agent in DEFAULT_AGENTS
    for capability in sorted(agent.capability_names)
]


@pytest.mark.parametrize(("agent_type", "capability"), EVERY_CAPABILITY)
def test_every_capability_says_offline_names_its_inputs_and_serialises(
    agent_type: str, capability: str
) -> None:
    agent = AGENTS_BY_TYPE[agent_type]
    dependencies = {"step-1": offline_output("step-1"), "step-0": {"findings": ["JWT", "OAuth2"]}}

    output = run(agent, make_input(capability, agent=agent, dependencies=dependencies))

    text = json.dumps(output)
    assert output["mode"] == "offline"
    assert "MEOWSTIK_LLM_BASE_URL" in output["note"] and "no llm" in output["note"].casefold()
    assert (output["agentId"], output["stepId"]) == (agent.definition.id, "step-2")
    assert output["summary"].endswith(".") and "\n" not in output["summary"]
    assert output["inputsUsed"] == ["step-1", "step-0"]
    assert "http" not in text


def test_research_step_lists_questions_and_queries_marked_not_executed() -> None:
    agent = AGENTS_BY_TYPE["researcher"]
    step_input = make_input(
        "web_research", agent=agent, step_id="step-1", parameters={"subject": "user authentication"}
    )

    output = run(agent, step_input)

    assert output["searchQueries"]["executed"] is False
    assert "user authentication best practices" in output["searchQueries"]["queries"]
    assert "user authentication express" in output["searchQueries"]["queries"]
    assert any("user authentication" in question for question in output["questions"])
    assert output["contextDigest"]["initialContext"] == CONTEXT
    assert output["inputsUsed"] == []


def test_research_step_for_one_compared_thing_focuses_on_that_thing() -> None:
    agent = AGENTS_BY_TYPE["researcher"]
    parameters = {"subject": "Redis and RabbitMQ", "item": "Redis"}

    output = run(agent, make_input("web_research", agent=agent, parameters=parameters))

    assert output["searchQueries"]["queries"][0] == "Redis"
    expected = "How does Redis differ from the alternatives in Redis and RabbitMQ?"
    assert expected in output["questions"]


def test_step_without_planner_parameters_takes_its_subject_from_the_title() -> None:
    agent = AGENTS_BY_TYPE["researcher"]

    output = run(agent, make_input("web_research", agent=agent, initial_context={}))

    assert output["searchQueries"]["queries"][0] == "authentication methods"


def test_draft_skeleton_has_a_section_per_research_question_and_no_prose() -> None:
    agent = AGENTS_BY_TYPE["researcher"]
    research = offline_output("step-1", questions=["What is JWT?", "What is OAuth2?"])
    parameters = {"subject": "quantum computing", "documentKind": "blog post"}

    output = run(
        agent,
        make_input(
            "document_creation",
            agent=agent,
            parameters=parameters,
            dependencies={"step-1": research},
        ),
    )

    skeleton = output["draftSkeleton"]
    assert skeleton["label"].startswith("skeleton only")
    assert skeleton["title"] == "Blog post about quantum computing"
    headings = [section["heading"] for section in skeleton["sections"]]
    assert headings == ["Introduction", "What is JWT?", "What is OAuth2?", "Conclusion"]
    assert [s.get("source") for s in skeleton["sections"][1:3]] == ["step-1", "step-1"]


def test_synthesis_separates_offline_inputs_from_real_ones() -> None:
    agent = AGENTS_BY_TYPE["researcher"]
    dependencies = {"step-2": offline_output("step-2"), "step-3": {"throughput": 1, "latency": 2}}

    output = run(agent, make_input("data_synthesis", agent=agent, dependencies=dependencies))

    assert output["inputCount"] == 2
    assert output["offlineInputs"] == ["step-2"]
    assert output["realInputs"] == ["step-3"]
    assert output["combinedKeys"] == ["latency", "throughput"]


def test_document_review_measures_a_real_draft_and_a_skeleton() -> None:
    agent = AGENTS_BY_TYPE["researcher"]
    skeleton = offline_output("step-2", draftSkeleton={"sections": [{}, {}, {}]})
    dependencies = {"step-2": skeleton, "step-3": "Quantum computers use qubits."}

    output = run(agent, make_input("document_analysis", agent=agent, dependencies=dependencies))

    assert output["documents"] == [
        {"stepId": "step-2", "kind": "skeleton", "sections": 3, "hasProse": False},
        {"stepId": "step-3", "kind": "text", "words": 4, "hasProse": True},
    ]
    assert output["verdict"] == "needs_real_execution"


def test_planner_checklist_covers_the_description_context_and_dependencies() -> None:
    agent = AGENTS_BY_TYPE["planner"]
    step_input = make_input(
        "task_decomposition",
        agent=agent,
        description="Design it: components, interfaces and data.",
        dependencies={"step-1": offline_output("step-1")},
    )

    output = run(agent, step_input)

    checklist = output["checklist"]
    assert {"Cover components", "Cover interfaces", "Cover data"} <= set(checklist)
    assert "Respect the given framework: express" in checklist
    assert any("step-1" in item and "offline" in item for item in checklist)
    assert output["builtOn"] == ["step-1"]


def test_coder_outline_is_labelled_an_outline_with_names_from_the_goal() -> None:
    agent = AGENTS_BY_TYPE["coder"]
    step_input = make_input(
        "code_generation", agent=agent, parameters={"subject": "user authentication"}
    )

    outline = run(agent, step_input)["outline"]

    assert outline["label"].startswith("outline only") and "not working code" in outline["label"]
    assert outline["module"] == "user_authentication.py"
    assert all("user_authentication" in function["name"] for function in outline["functions"])
    assert "def " not in json.dumps(outline)


def test_test_plan_turns_an_outline_into_test_cases_it_did_not_run() -> None:
    agent = AGENTS_BY_TYPE["coder"]
    outline = {"functions": [{"name": "login_user", "purpose": "check a password"}]}
    step_input = make_input(
        "testing",
        agent=agent,
        parameters={"subject": "user authentication"},
        dependencies={"step-3": offline_output("step-3", outline=outline)},
    )

    plan = run(agent, step_input)["testPlan"]

    assert plan["label"] == "test plan only: no tests were written or run"
    names = [case["name"] for case in plan["cases"]]
    assert names[0] == "test_login_user"
    assert "test_user_authentication_rejects_invalid_input" in names


def test_reviewer_says_offline_inputs_need_real_execution() -> None:
    agent = AGENTS_BY_TYPE["reviewer"]
    dependencies = {"step-3": offline_output("step-3"), "step-4": offline_output("step-4")}

    output = run(agent, make_input("code_review", agent=agent, dependencies=dependencies))

    assert output["verdict"] == "needs_real_execution"
    assert [check["stepId"] for check in output["checks"]] == ["step-3", "step-4"]
    assert all(check["offline"] for check in output["checks"])


def test_reviewer_flags_missing_empty_and_error_like_inputs() -> None:
    agent = AGENTS_BY_TYPE["reviewer"]
    dependencies = {"step-3": {}, "step-4": {"error": "boom"}, "step-5": "Traceback (most recent)"}

    flagged = run(agent, make_input("code_review", agent=agent, dependencies=dependencies))
    missing = run(
        agent,
        make_input(
            "code_review",
            agent=agent,
            dependencies=dependencies,
            depends_on=["step-3", "step-4", "step-5", "step-6"],
        ),
    )

    assert flagged["verdict"] == "inputs_look_wrong"
    assert [(c["empty"], c["errorLike"]) for c in flagged["checks"]] == [
        (True, False),
        (False, True),
        (False, True),
    ]
    assert (missing["verdict"], missing["missingInputs"]) == ("missing_inputs", ["step-6"])


def test_reviewer_never_approves_real_looking_inputs_it_cannot_judge() -> None:
    agent = AGENTS_BY_TYPE["reviewer"]
    dependencies = {"step-3": {"files": ["auth.py"]}}

    output = run(agent, make_input("code_review", agent=agent, dependencies=dependencies))

    assert output["verdict"] == "needs_human_review"


def test_diagnosis_reports_error_evidence_from_context_and_shared_state() -> None:
    agent = AGENTS_BY_TYPE["reviewer"]
    step_input = make_input(
        "error_diagnosis",
        agent=agent,
        step_id="step-1",
        initial_context={"errorMessage": "KeyError: 'user'", "team": "core"},
        shared_state={"workerLogs": "started\nfailed"},
    )

    output = run(agent, step_input)

    assert output["evidenceProvided"] == {
        "errorMessage": "KeyError: 'user'",
        "workerLogs": "started failed",
    }
    assert output["verdict"] == "needs_real_execution"
    assert output["diagnosisSteps"]


def test_unusual_input_values_still_give_json_ready_output() -> None:
    agent = AGENTS_BY_TYPE["researcher"]
    context = {"ключ": "значение 🔐", "numbers": {1, 2}, "long": "word " * 500, "none": None}
    dependencies = {"step-1": ["a", 1, None], "step-0": None}

    output = run(
        agent,
        make_input(
            "data_synthesis", agent=agent, initial_context=context, dependencies=dependencies
        ),
    )

    json.dumps(output)
    assert all(len(preview) <= 80 for preview in output["digest"]["initialContext"].values())
    assert [entry["empty"] for entry in output["digest"]["dependencies"]] == [False, True]


def test_spec_plan_runs_through_the_offline_fleet_end_to_end() -> None:
    """Given the spec's goal planned by rules, when every step runs on the built-in agent of its
    type with its dependencies' outputs, then each output is offline, names exactly the
    dependencies it was given, and the final review asks for real execution."""
    plan = plan_goal(GOAL, CONTEXT)
    outputs: dict[str, dict[str, Any]] = {}

    for step in plan.steps:
        agent = AGENTS_BY_TYPE[step.agent_type]
        step_input = StepInput(
            session_id="orch-1",
            step_id=step.id,
            job_id=f"orch-1.{step.id}",
            goal=GOAL,
            step=step,
            agent_id=agent.definition.id,
            attempt=1,
            initial_context=CONTEXT,
            shared_state={},
            dependencies={dep: outputs[dep] for dep in step.depends_on},
        )
        outputs[step.id] = run(agent, step_input)

    assert all(output["mode"] == "offline" for output in outputs.values())
    assert [output["inputsUsed"] for output in outputs.values()] == [
        step.depends_on for step in plan.steps
    ]
    assert outputs["step-5"]["verdict"] == "needs_real_execution"
    assert "http" not in json.dumps(outputs)
