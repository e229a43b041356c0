"""The built-in fleet: the four default agents, doing honest offline work.

No LLM is configured in this version, so these agents never pretend to research, write or code.
Each does the deterministic part of its job from the step's input alone: questions and queries
(marked not executed), checklists, outlines labelled as outlines, digests of its inputs, and
review checks with a verdict such as ``needs_real_execution``. Every output is a JSON-ready dict
with ``mode`` ("offline"), ``agentId``, ``stepId``, a one-sentence ``summary``, a ``note`` saying
why this is offline work, and ``inputsUsed`` (dependency ids read), plus each capability's fields.

One module per agent (``planner``, ``researcher``, ``coder``, ``reviewer``); what they share, the
``OfflineAgent`` base and the input-describing helpers, is in ``offline``.
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
