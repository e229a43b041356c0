"""The built-in fleet: the four default agents, working with the model when one is configured
and doing honest offline work when not.

With a model (``step_input.llm``), each agent asks it for its role's structured answer, built
from the step, the goal, the context and its dependencies' outputs, validated with one repair
round (``modelled``): the planner a plan of steps (run as a sub-plan when the model asks and the
fleet's capabilities are known), the researcher findings and open questions, the coder files,
the reviewer a verdict and issues. Such an output has ``mode`` "llm" and the ``model``.

Without one, these agents never pretend to research, write or code. Each does the deterministic
part of its job from the step's input alone: questions and queries (marked not executed),
checklists, outlines labelled as outlines, digests of its inputs, and review checks with a
verdict such as ``needs_real_execution``. Every output is a JSON-ready dict with ``mode``
("offline"), ``agentId``, ``stepId``, a one-sentence ``summary``, a ``note`` saying why this is
offline work, and ``inputsUsed`` (dependency ids read), plus each capability's fields.

One module per agent (``planner``, ``researcher``, ``coder``, ``reviewer``); what they share is in
``offline`` (the ``OfflineAgent`` base and the input-describing helpers) and ``modelled`` (the
role prompt, the validated answer and ``ModelledAgent``).
"""

from workers.agents.base import Agent
from workers.agents.builtin.coder import CoderAgent
from workers.agents.builtin.planner import PlannerAgent
from workers.agents.builtin.researcher import ResearcherAgent
from workers.agents.builtin.reviewer import ReviewerAgent

BUILTIN_AGENTS: tuple[Agent, ...] = (
    PlannerAgent(),
    ResearcherAgent(),
    CoderAgent(),
    ReviewerAgent(),
)

__all__ = ["BUILTIN_AGENTS", "CoderAgent", "PlannerAgent", "ResearcherAgent", "ReviewerAgent"]
