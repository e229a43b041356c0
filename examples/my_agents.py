"""An example agent module. Host it with:

    PYTHONPATH=. MEOWSTIK_AGENT_MODULES=examples.my_agents meowstik worker --agents summariser-001

and submit a plan step with "requiredCapabilities": ["summarisation"].
"""

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
