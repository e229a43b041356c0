"""``step_input.state`` as agents get it from a claim: private entries are the agent's own, reads
see private then temporary then shared, and transactions commit together or not at all."""

from __future__ import annotations

import pytest

from orchestrator.core.errors import StateConflictError
from orchestrator.core.models import OrchestrateRequest
from orchestrator.settings import Settings
from tests.support.world import build_world


@pytest.fixture
def runs(any_redis):
    world = build_world(any_redis, Settings())
    steps = [
        {"id": "a", "title": "a", "requiredCapabilities": ["web_research"]},
        {"id": "b", "title": "b", "requiredCapabilities": ["code_generation"]},
    ]
    request = OrchestrateRequest.model_validate({"goal": "g", "plan": {"steps": steps}})
    sid = world.engine.submit(request).session_id
    a = world.lifecycle.begin(sid, "a", "researcher-001")
    b = world.lifecycle.begin(sid, "b", "coder-001")
    return a.step_input.state, b.step_input.state


def test_a_private_value_is_read_back_by_its_agent_only(runs):
    mine, other = runs
    assert mine.private.get("k", "none") == "none"
    mine.private.set("k", {"n": 1})
    assert mine.private.get("k") == {"n": 1}
    assert mine.private.entries() == {"k": {"n": 1}}
    assert other.private.get("k") is None and other.private.entries() == {}
    assert mine.get("k") == {"n": 1} and other.get("k") is None


def test_reads_prefer_private_then_temporary_then_shared(runs):
    mine, other = runs
    other.set("k", "shared")
    assert mine.get("k") == "shared"
    other.set("k", "temporary", type="temporary", ttl_s=60)
    assert mine.get("k") == "temporary"
    mine.private.set("k", "private")
    assert mine.get("k") == "private" and other.get("k") == "temporary"


def test_a_transaction_commits_together_and_a_raced_one_changes_nothing(runs):
    mine, other = runs
    with mine.transaction() as tx:
        tx.set("x", tx.get("x", 0) + 1)
        tx.set("y", "both")
    assert mine.get("x") == 1 and mine.get("y") == "both"
    with pytest.raises(StateConflictError) as raised:
        with mine.transaction() as tx:
            tx.set("x", tx.get("x", 0) + 1)
            other.set("x", 10)  # another agent's write lands between the read and the commit
    assert raised.value.keys == ["x"] and mine.get("x") == 10
    with pytest.raises(RuntimeError), mine.transaction() as tx:
        tx.set("z", 1)
        raise RuntimeError("an error in the block discards the writes")
    assert mine.get("z") is None
