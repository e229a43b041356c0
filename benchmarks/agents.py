"""A no-op agent, so benchmarks measure orchestration and not agent work."""

from workers.agents.base import agent


@agent(id="noop-001", name="No-op", type="bench", capabilities=["noop_work"], max_load=2)
def noop(step_input):
    """Returns the step id and nothing else."""
    return step_input.step_id
