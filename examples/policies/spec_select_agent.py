"""The spec's custom scheduling policy, as a Meowstik selection policy: prefer less loaded
agents, then higher priority, then the more specialised (fewer capabilities). It ranks exactly
as the built-in ``least_loaded`` does (tests/unit/test_policies.py checks it on random fleets);
it is here to show the shape of a policy in user code.

    MEOWSTIK_POLICY_MODULES=examples.policies.spec_select_agent \\
    MEOWSTIK_SELECTION_POLICY=spec_select_agent meowstik up
"""

from __future__ import annotations

from orchestrator.core.policies import Candidate, SelectionPolicy, StepToRoute


class SpecSelectAgent(SelectionPolicy):
    name = "spec_select_agent"

    def rank(self, candidates: list[Candidate], step: StepToRoute) -> list[Candidate]:
        return sorted(
            candidates,
            key=lambda c: (c.load, -c.agent.priority, len(c.agent.capabilities), c.id),
        )


policy = SpecSelectAgent()
