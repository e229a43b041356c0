"""An example agent module. Host it with:

    PYTHONPATH=. MEOWSTIK_AGENT_MODULES=examples.my_agents \
        meowstik worker --agents summariser-001,splitter-001

and submit a plan step with "requiredCapabilities": ["summarisation"] (or
["batch_summarisation"] with "parameters": {"documents": [...]}).
"""

from orchestrator.core.steps import StepResult
from workers.agents.base import agent


@agent(
    id="summariser-001",
    name="Summariser",
    type="writer",
    capabilities=["summarisation"],
    max_load=2,
)
def summarise(step_input):
    """Summarise the outputs of the steps this one depends on."""
    return {
        "summary": f"{len(step_input.dependencies)} inputs",
        "inputs": sorted(step_input.dependencies),
    }


@agent(
    id="splitter-001",
    name="Splitter",
    type="writer",
    capabilities=["batch_summarisation"],
    max_load=2,
)
def split_and_merge(step_input):
    """Decompose at run time: one summarisation subtask per document, then merge their outputs
    when the step runs again after them."""
    documents = step_input.step.parameters.get("documents", [])
    if documents and not step_input.subtask_ids:
        return StepResult(
            subtasks=[
                {
                    "id": f"doc-{number}",
                    "title": f"Summarise {name}",
                    "requiredCapabilities": ["summarisation"],
                    "parameters": {"document": name},
                }
                for number, name in enumerate(documents, start=1)
            ]
        )
    return {"merged": step_input.subtask_outputs, "documents": len(documents)}
