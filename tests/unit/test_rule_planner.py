"""The rule-based planner: the spec's goals, each kind of goal, and validity for any goal."""

from __future__ import annotations

import pytest

from orchestrator.core.errors import PlanError
from orchestrator.core.fleet import DEFAULT_AGENTS
from orchestrator.core.graph import PlanGraph
from orchestrator.core.models import TaskPlan
from orchestrator.planning.rules import MAX_GOAL_CHARS, plan_goal, read_goal

FLEET_ROUTES = [(frozenset(agent.capability_names), agent.type) for agent in DEFAULT_AGENTS]
CAPABILITIES_BY_TYPE = {agent.type: agent.capability_names for agent in DEFAULT_AGENTS}


def shape(plan: TaskPlan) -> list[tuple[str, str | None, list[str], list[str]]]:
    """(id, agent type, capabilities, dependencies) of every step, for compact assertions."""
    return [(s.id, s.agent_type, s.required_capabilities, s.depends_on) for s in plan.steps]


def test_spec_goal_becomes_five_steps_research_first() -> None:
    plan = plan_goal("Research and implement user authentication")

    assert shape(plan) == [
        ("step-1", "researcher", ["web_research"], []),
        ("step-2", "planner", ["task_decomposition"], ["step-1"]),
        ("step-3", "coder", ["code_generation"], ["step-2"]),
        ("step-4", "coder", ["testing"], ["step-3"]),
        ("step-5", "reviewer", ["code_review"], ["step-3", "step-4"]),
    ]
    assert plan.steps[0].title.startswith("Research") and "authentication" in plan.steps[0].title
    assert plan.parallelizable is False  # a chain: step-5 waits for both of its inputs


def test_spec_blog_goal_researches_drafts_and_reviews_the_text() -> None:
    plan = plan_goal("Research and write a blog post about quantum computing")

    assert shape(plan) == [
        ("step-1", "researcher", ["web_research"], []),
        ("step-2", "researcher", ["document_creation"], ["step-1"]),
        ("step-3", "researcher", ["document_analysis"], ["step-2"]),
    ]
    assert [step.title for step in plan.steps] == [
        "Research quantum computing",
        "Draft the blog post about quantum computing",
        "Review the draft blog post about quantum computing",
    ]


def test_build_goal_designs_implements_tests_and_reviews() -> None:
    plan = plan_goal("Build a REST API for todos")

    assert shape(plan) == [
        ("step-1", "planner", ["task_decomposition"], []),
        ("step-2", "coder", ["code_generation"], ["step-1"]),
        ("step-3", "coder", ["testing"], ["step-2"]),
        ("step-4", "reviewer", ["code_review"], ["step-2", "step-3"]),
    ]
    assert plan.steps[1].title == "Implement the REST API for todos"


def test_comparison_researches_each_named_thing_in_parallel_then_synthesises() -> None:
    plan = plan_goal("Compare Redis and RabbitMQ")

    assert shape(plan) == [
        ("step-1", "planner", ["task_decomposition"], []),
        ("step-2", "researcher", ["web_research"], ["step-1"]),
        ("step-3", "researcher", ["web_research"], ["step-1"]),
        ("step-4", "researcher", ["data_synthesis"], ["step-2", "step-3"]),
    ]
    assert [plan.steps[1].title, plan.steps[2].title] == ["Research Redis", "Research RabbitMQ"]
    assert plan.parallelizable is True


def test_comparison_of_three_things_with_vs_and_commas_fans_out_three_ways() -> None:
    plan = plan_goal("What are the differences between Kafka, NATS and Pulsar?")

    research = [step for step in plan.steps if step.required_capabilities == ["web_research"]]
    assert [step.parameters["item"] for step in research] == ["Kafka", "NATS", "Pulsar"]
    assert plan.steps[-1].depends_on == [step.id for step in research]
    assert read_goal("Redis vs. RabbitMQ for task queues").items == ("Redis", "RabbitMQ")


def test_research_of_one_thing_is_a_single_chain() -> None:
    plan = plan_goal("Investigate memory usage of the scheduler")

    assert shape(plan) == [
        ("step-1", "planner", ["task_decomposition"], []),
        ("step-2", "researcher", ["web_research"], ["step-1"]),
        ("step-3", "researcher", ["data_synthesis"], ["step-2"]),
    ]
    assert plan.parallelizable is False


def test_writing_goal_outlines_drafts_and_reviews() -> None:
    plan = plan_goal("Write a short technical report on the impact of caching on latency")

    assert shape(plan) == [
        ("step-1", "planner", ["workflow_design"], []),
        ("step-2", "researcher", ["document_creation"], ["step-1"]),
        ("step-3", "researcher", ["document_analysis"], ["step-2"]),
    ]
    assert plan.steps[0].title == "Outline the report about the impact of caching on latency"


def test_debug_goal_diagnoses_fixes_and_tests() -> None:
    plan = plan_goal("Please help me fix the login bug")

    assert shape(plan) == [
        ("step-1", "reviewer", ["error_diagnosis"], []),
        ("step-2", "coder", ["code_refactoring"], ["step-1"]),
        ("step-3", "coder", ["testing"], ["step-2"]),
    ]
    assert plan.steps[0].title == "Diagnose the login bug"


def test_a_described_failure_without_a_verb_is_still_debugging() -> None:
    assert read_goal("The checkout page crashes on submit").template == "debug"


def test_goal_without_keywords_gets_the_general_plan_titled_with_the_goal() -> None:
    plan = plan_goal("Organise the team offsite")

    assert shape(plan) == [
        ("step-1", "planner", ["task_decomposition"], []),
        ("step-2", "researcher", ["data_synthesis"], ["step-1"]),
        ("step-3", "researcher", ["document_analysis"], ["step-2"]),
    ]
    assert all("Organise the team offsite" in step.title for step in plan.steps)


def test_the_topic_after_about_does_not_change_the_kind_of_plan() -> None:
    reading = read_goal("Write a blog post about building REST APIs")

    assert (reading.template, reading.subject, reading.document_kind) == (
        "write",
        "building REST APIs",
        "blog post",
    )


def test_a_noun_after_the_verb_stays_in_the_subject() -> None:
    reading = read_goal("Research testing frameworks for Python")

    assert (reading.template, reading.subject) == ("research", "testing frameworks for Python")


def test_create_means_writing_when_a_document_is_named_and_coding_otherwise() -> None:
    assert read_goal("Create a report about Q3 sales").template == "write"
    assert read_goal("Create a todo app").template == "build"


def test_writing_tests_plans_writes_and_reviews_the_tests() -> None:
    plan = plan_goal("Write unit tests for the parser")

    assert [step.title for step in plan.steps] == [
        "Plan the tests for the parser",
        "Write tests for the parser",
        "Review the tests for the parser",
    ]
    assert plan.steps[1].required_capabilities == ["testing"]


def test_matching_ignores_case() -> None:
    assert shape(plan_goal("RESEARCH AND IMPLEMENT USER AUTHENTICATION")) == shape(
        plan_goal("Research and implement user authentication")
    )


def test_the_same_goal_always_gives_the_same_plan() -> None:
    context = {"framework": "express"}
    first = plan_goal("Compare Redis and RabbitMQ", context)

    assert plan_goal("Compare Redis and RabbitMQ", context).to_json_dict() == first.to_json_dict()


def test_context_keys_are_named_in_every_description() -> None:
    plan = plan_goal(
        "Research and implement user authentication",
        {"framework": "express", "database": "postgresql"},
    )

    assert all("framework, database" in step.description for step in plan.steps)


def test_plan_serialises_to_the_spec_camel_case_shape() -> None:
    document = plan_goal("Research and implement user authentication").to_json_dict()

    assert document["goal"] == "Research and implement user authentication"
    assert document["parallelizable"] is False
    assert document["steps"][1]["agentType"] == "planner"
    assert document["steps"][1]["requiredCapabilities"] == ["task_decomposition"]
    assert document["steps"][1]["dependsOn"] == ["step-1"]


def test_a_goal_longer_than_a_plan_can_hold_is_rejected_with_a_plan_error() -> None:
    with pytest.raises(PlanError) as caught:
        plan_goal("x" * (MAX_GOAL_CHARS + 1))

    assert caught.value.details == {"goalChars": MAX_GOAL_CHARS + 1, "maxGoalChars": MAX_GOAL_CHARS}


VARIED_GOALS = [
    "Research and implement user authentication",
    "Research and write a blog post about quantum computing",
    "Compare Redis and RabbitMQ",
    "Compare Flask, FastAPI, Django and Starlette for building APIs",
    "Debug why the worker crashes on startup",
    "Document the REST API",
    "Plan a birthday party",
    "",
    "   \n\t  ",
    "???",
    "Recherchiere und implementiere Authentifizierung 🔐",
    "研究并实现用户认证",
    "Écrire un article sur la cuisine française",
    "Research and implement " + "a very long subject with many words " * 110,
    "Compare " + " and ".join(f"option{i}" for i in range(200)),
    "Write a blog post about " + "ünïcödé " * 490,
    "and and and , , , about on regarding",
    "x" * MAX_GOAL_CHARS,
]


@pytest.mark.parametrize("goal", VARIED_GOALS, ids=lambda goal: repr(goal[:30]))
def test_every_plan_validates_and_routes_to_the_default_fleet(goal: str) -> None:
    plan = plan_goal(goal, {"language": "python", "ключ": "значение"})

    graph = PlanGraph.build(plan.steps)
    graph.check_routable(FLEET_ROUTES)
    assert [step.id for step in plan.steps] == [f"step-{n}" for n in range(1, len(plan.steps) + 1)]
    assert plan.parallelizable == graph.is_parallelizable()
    assert plan.goal == goal
    for step in plan.steps:
        assert 0 < len(step.title) <= 200
        assert step.description
        assert set(step.required_capabilities) <= CAPABILITIES_BY_TYPE[step.agent_type]
    assert TaskPlan.model_validate(plan.to_json_dict()) == plan
