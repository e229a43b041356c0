"""A selection policy in user code on real processes (issue 21): a file outside the repository's
packages, named by path in MEOWSTIK_POLICY_MODULES on the API and the worker, routes a session's
steps (at submit, and the step its completion releases), where least_loaded would have picked
the higher-priority agent that always fails."""

from __future__ import annotations

import textwrap

import pytest
import redis

from tests.support.cluster import Cluster
from tests.support.plans import step

pytestmark = pytest.mark.integration

POLICY = textwrap.dedent(
    """
    from orchestrator.core.policies import SelectionPolicy

    class LowestPriorityFirst(SelectionPolicy):
        name = "lowest_priority_first"

        def rank(self, candidates, step):
            return sorted(candidates, key=lambda c: (c.agent.priority, c.load, c.id))

    policy = LowestPriorityFirst()
    """
)


@pytest.fixture(scope="module")
def policy_cluster(redis_server, tmp_path_factory):
    code = tmp_path_factory.mktemp("user-code") / "routing_policy.py"
    code.write_text(POLICY)
    logs = tmp_path_factory.mktemp("policy-cluster-logs")
    cluster = Cluster(redis_server.url, logs, {"MEOWSTIK_POLICY_MODULES": str(code)})
    try:
        redis.Redis.from_url(redis_server.url).flushall()
        cluster.start_worker(concurrency=2, agents="primary-001,secondary-001")
        cluster.start_api()
        cluster.wait_ready({"primary-001", "secondary-001"})
        yield cluster
    finally:
        cluster.stop()


def test_a_user_policy_routes_a_session_on_real_workers(policy_cluster):
    plan = {"steps": [step("A", "fallback_work"), step("B", "fallback_work", "A")]}
    body = {"goal": "user policy", "plan": plan, "policy": "lowest_priority_first"}
    submitted = policy_cluster.submit(body)
    assert submitted["policy"] == "lowest_priority_first"
    done = policy_cluster.wait_session(submitted["sessionId"])
    assert done["status"] == "completed", done["errors"]
    for step_id in ("A", "B"):
        state = done["steps"][step_id]
        assert state["agentId"] == "secondary-001" and state["attempts"] == 1, state
    # the default (least_loaded) prefers the primary by priority: it fails, then falls back
    plain = policy_cluster.submit(
        {"goal": "default", "plan": {"steps": [step("A", "fallback_work")]}}
    )
    done = policy_cluster.wait_session(plain["sessionId"])
    assert done["steps"]["A"]["agentId"] == "secondary-001"
    assert done["steps"]["A"]["attempts"] == 2  # primary first, then the fallback
