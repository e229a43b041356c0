import pytest

from orchestrator.core.errors import AgentCatalogError
from orchestrator.core.models import PlanStep
from orchestrator.core.steps import StepInput
from orchestrator.settings import Settings
from workers.agents.catalog import load_agents
from workers.hosting import default_concurrency, worker_queues


def test_the_readme_example_module_is_discovered_and_runs():
    catalog = load_agents(Settings(agent_modules="examples.my_agents"))
    summariser = catalog["summariser-001"]
    assert summariser.definition.capability_names == {"summarisation"}
    step = PlanStep(id="sum", title="sum", required_capabilities=["summarisation"])
    step_input = StepInput(
        session_id="s",
        step_id="sum",
        job_id="s.sum",
        goal="g",
        step=step,
        agent_id="summariser-001",
        attempt=1,
        dependencies={"b": 1, "a": 2},
    )
    assert summariser.run(step_input) == {"summary": "2 inputs", "inputs": ["a", "b"]}


def test_the_built_in_fleet_is_always_known():
    assert {"planner-001", "researcher-001", "coder-001", "reviewer-001"} <= set(
        load_agents(Settings())
    )


def test_an_unimportable_agent_module_is_a_clear_error():
    with pytest.raises(AgentCatalogError, match="no_such_module"):
        load_agents(Settings(agent_modules="no_such_module"))


def test_a_worker_consumes_its_capability_queues_and_its_agent_queues():
    catalog = load_agents(Settings())
    queues = worker_queues([catalog["reviewer-001"]])
    assert queues == ["agent.reviewer-001", "cap.code_review", "cap.error_diagnosis"]
    assert default_concurrency([catalog["planner-001"], catalog["coder-001"]]) == 8
    assert default_concurrency([catalog["reviewer-001"]]) == 2


@pytest.mark.parametrize(
    "backlog, active, last_received_ago_ms, consuming",
    [
        (0, 0, 10**9, True),  # idle with nothing to do
        (5, 4, 10**9, True),  # every process busy: not taking more is right
        (5, 1, 1_000, True),  # took a message recently
        (5, 1, 20_000, False),  # messages wait, processes are free, nothing received: deaf
    ],
)
def test_a_worker_is_alive_only_while_it_consumes(backlog, active, last_received_ago_ms, consuming):
    from workers.hosting import is_consuming

    now = 10**12
    assert (
        is_consuming(
            backlog=backlog,
            active=active,
            concurrency=4,
            last_received_ms=now - last_received_ago_ms,
            now_ms=now,
            grace_ms=15_000,
        )
        is consuming
    )


def test_the_readme_decomposing_example_splits_first_and_merges_after():
    splitter = load_agents(Settings(agent_modules="examples.my_agents"))["splitter-001"]
    step = PlanStep(
        id="batch",
        title="batch",
        required_capabilities=["batch_summarisation"],
        parameters={"documents": ["a.txt", "b.txt"]},
    )
    first = StepInput(
        session_id="s", step_id="batch", job_id="s.batch", goal="g", step=step,
        agent_id="splitter-001", attempt=1,
    )  # fmt: skip
    subtasks = splitter.run(first).subtasks
    assert [s["id"] for s in subtasks] == ["doc-1", "doc-2"]
    assert subtasks[1]["parameters"] == {"document": "b.txt"}
    again = StepInput(
        session_id="s", step_id="batch", job_id="s.batch", goal="g", step=step,
        agent_id="splitter-001", attempt=2, subtask_ids=("batch.doc-1", "batch.doc-2"),
        dependencies={"batch.doc-1": "A", "batch.doc-2": "B"}, decompositions=1,
    )  # fmt: skip
    assert splitter.run(again) == {
        "merged": {"batch.doc-1": "A", "batch.doc-2": "B"},
        "documents": 2,
    }
