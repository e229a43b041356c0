"""Every step status change the Lua scripts make is allowed by STEP_TRANSITIONS."""

import pytest

from orchestrator.core.errors import RetryableStepError
from orchestrator.core.models import OrchestrateRequest
from orchestrator.core.statuses import STEP_TERMINAL, STEP_TRANSITIONS, StepStatus
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from tests.support.world import build_world

AGENT = "researcher-001"


class Audited:
    """Runs lifecycle operations and checks every status change they cause."""

    def __init__(self, fake_redis, policy):
        world = build_world(fake_redis, Settings(lease_s=5, step_max_attempts=2))
        self.clock, self.engine, self.lifecycle = world.clock, world.engine, world.lifecycle
        steps = [
            {"id": s, "title": s, "requiredCapabilities": ["web_research"], "dependsOn": d}
            for s, d in [("a", []), ("b", []), ("c", ["a"]), ("d", ["a", "b"])]
        ]
        request = OrchestrateRequest.model_validate(
            {"goal": "audit", "plan": {"steps": steps}, "failurePolicy": policy}
        )
        self.sid = self.engine.submit(request).session_id
        self.seen: set[tuple[str, str]] = set()

    def statuses(self):
        return {k: v.status for k, v in self.engine.snapshot(self.sid).steps.items()}

    def __call__(self, operation, *args):
        before = self.statuses()
        result = operation(*args)
        after = self.statuses()
        for step_id, old in before.items():
            new = after[step_id]
            if old != new:
                assert StepStatus(new) in STEP_TRANSITIONS[StepStatus(old)], (
                    f"{step_id}: {old} -> {new} not in STEP_TRANSITIONS"
                )
                self.seen.add((old, new))
        return result


@pytest.mark.parametrize("policy", ["fail_fast", "continue"])
def test_every_transition_the_scripts_make_is_in_the_table(fake_redis, policy):
    audit = Audited(fake_redis, policy)
    life = audit.lifecycle
    a = audit(life.begin, audit.sid, "a", AGENT)
    audit(life.fail, a, RetryableStepError("transient"))  # running -> queued
    a = audit(life.begin, audit.sid, "a", AGENT)
    audit.clock.advance(6)
    a = audit(life.begin, audit.sid, "a", AGENT)  # lease expired: running -> running
    audit(life.succeed, a, StepResult("a"))  # releases c
    b = audit(life.begin, audit.sid, "b", AGENT)
    audit(life.fail, b, ValueError("permanent"))  # fail_fast cancels; continue skips d
    c = audit(life.begin, audit.sid, "c", AGENT)
    if not isinstance(c, type(a)):
        assert audit.statuses()["c"] == "cancelled"
    else:
        audit(life.succeed, c, StepResult("c"))
    final = audit.statuses()
    assert all(StepStatus(status) in STEP_TERMINAL for status in final.values())
    expected_d = "cancelled" if policy == "fail_fast" else "skipped"
    assert final["d"] == expected_d
    assert ("running", "queued") in audit.seen and ("pending", "queued") in audit.seen


def test_terminal_statuses_have_no_way_out():
    for status in STEP_TERMINAL:
        assert STEP_TRANSITIONS[status] == frozenset()
