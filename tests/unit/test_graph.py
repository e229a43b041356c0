import pytest

from orchestrator.core.errors import (
    CycleError,
    DuplicateStepError,
    UnknownDependencyError,
    UnroutableStepError,
)
from orchestrator.core.fleet import DEFAULT_AGENTS
from orchestrator.core.graph import PlanGraph, find_cycle
from orchestrator.core.models import PlanStep


def step(step_id, *deps, caps=("web_research",), subtasks=()):
    return PlanStep(
        id=step_id,
        title=step_id,
        required_capabilities=list(caps),
        depends_on=list(deps),
        subtasks=list(subtasks),
    )


FLEET = [(a.capability_names, a.type) for a in DEFAULT_AGENTS]


def test_a_diamond_plan_builds_with_children_and_roots():
    graph = PlanGraph.build([step("a"), step("b"), step("c", "a"), step("d", "a", "b")])
    assert graph.roots == ["a", "b"]
    assert graph.nodes["a"].children == ("c", "d")
    assert graph.nodes["d"].depends_on == ("a", "b")
    assert graph.is_parallelizable()


def test_a_chain_is_not_parallelizable():
    assert not PlanGraph.build([step("a"), step("b", "a"), step("c", "b")]).is_parallelizable()


def test_a_cycle_is_rejected_with_its_path():
    with pytest.raises(CycleError) as caught:
        PlanGraph.build([step("a", "c"), step("b", "a"), step("c", "b")])
    cycle = caught.value.cycle
    assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert "a" in caught.value.message and "->" in caught.value.message


def test_a_self_dependency_is_a_cycle():
    with pytest.raises(CycleError):
        PlanGraph.build([step("a", "a")])


def test_unknown_dependencies_are_named():
    with pytest.raises(UnknownDependencyError) as caught:
        PlanGraph.build([step("a"), step("b", "a", "ghost"), step("c", "nope")])
    assert caught.value.missing == {"b": ["ghost"], "c": ["nope"]}


def test_duplicate_ids_across_subtasks_are_rejected():
    with pytest.raises(DuplicateStepError) as caught:
        PlanGraph.build([step("a", subtasks=[step("x")]), step("x")])
    assert caught.value.step_ids == ["x"]


def test_subtasks_run_before_their_parent_and_after_its_dependencies():
    parent = step(
        "impl",
        "design",
        caps=("code_generation",),
        subtasks=[step("s1"), step("s2"), step("s3", "s1")],
    )
    graph = PlanGraph.build([step("design"), parent, step("review", "impl")])
    assert graph.nodes["impl"].depends_on == ("design", "s1", "s2", "s3")
    assert graph.nodes["s1"].depends_on == ("design",)
    assert graph.nodes["s3"].depends_on == ("design", "s1")
    assert graph.nodes["s2"].parent_id == "impl"
    order = graph.topological_order()
    assert order.index("s3") > order.index("s1") and order.index("impl") > order.index("s3")


def test_steps_no_agent_can_serve_are_named_with_what_they_need():
    graph = PlanGraph.build(
        [
            step("a"),
            step("b", caps=("web_research", "code_generation")),
            step("c", caps=("quantum_magic",)),
        ]
    )
    with pytest.raises(UnroutableStepError) as caught:
        graph.check_routable(FLEET)
    assert set(caught.value.unroutable) == {"b", "c"}
    assert "quantum_magic" in caught.value.message


def test_find_cycle_returns_none_for_a_dag():
    assert find_cycle({"a": [], "b": ["a"], "c": ["a", "b"]}) is None
