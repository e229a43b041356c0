"""Selection policies in user code (issue 21): a module outside the repository's packages on
MEOWSTIK_POLICY_MODULES routes a session, both at submit and for the steps a completion
releases; unknown names are refused at submit (422) and at start; a policy cannot drop or invent
candidates; the spec's selectAgent example ranks exactly like the built-in least_loaded."""

import random
import sys
import textwrap

import pytest

from api import create_app
from examples.policies.spec_select_agent import policy as spec_policy
from orchestrator.core.errors import ConfigurationError, UnknownPolicyError
from orchestrator.core.models import (
    AgentDefinition,
    Capability,
    OrchestrateRequest,
    RegisteredAgent,
)
from orchestrator.core.policies import (
    BUILTINS,
    PolicyCatalog,
    SelectionPolicy,
    StepToRoute,
    rank_candidates,
)
from orchestrator.core.selection import least_loaded
from orchestrator.core.step_runs import StepRun
from orchestrator.core.steps import StepResult
from orchestrator.engine.policies import load_policies
from orchestrator.settings import Settings
from tests.support.recording import RecordingDispatcher
from tests.support.world import build_world

POLICY_MODULE = textwrap.dedent(
    '''
    from orchestrator.core.policies import SelectionPolicy

    class LastById(SelectionPolicy):
        """The agent whose id sorts last: the opposite of what least_loaded picks here."""

        name = "last_by_id"
        uses_metrics = True
        seen = []

        def rank(self, candidates, step):
            self.seen.append((step.step_ids, {c.id: c.metrics for c in candidates}))
            return sorted(candidates, key=lambda c: c.id, reverse=True)

    policy = LastById()
    '''
)
AGENTS = tuple(
    AgentDefinition(
        id=f"w{i}", name=f"w{i}", type="t", max_load=5, capabilities=[Capability(name="work")]
    )
    for i in (1, 2, 3)
)


@pytest.fixture
def policy_module(tmp_path, monkeypatch):
    """A module in a temp dir, importable only through sys.path (not a package of the repo)."""
    name = f"user_policy_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(POLICY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def plan(*steps):
    return {
        "steps": [
            {"id": s, "title": s, "requiredCapabilities": ["work"], "dependsOn": list(deps)}
            for s, *deps in steps
        ]
    }


def test_a_policy_module_outside_the_packages_routes_a_session_and_its_released_steps(
    any_redis, policy_module
):
    world = build_world(any_redis, Settings(policy_modules=policy_module), agents=AGENTS)
    body = {"goal": "g", "plan": plan(("a",), ("b", "a")), "policy": "last_by_id"}
    snap = world.engine.submit(OrchestrateRequest.model_validate(body))
    assert snap.policy == "last_by_id"
    assert snap.steps["a"].agent_id == "w3"  # least_loaded would pick w1
    run = world.lifecycle.begin(snap.session_id, "a", "w3")
    assert isinstance(run, StepRun)
    world.clock.advance(1.0)  # the router reads metrics at most once a second per agent
    world.lifecycle.succeed(run, StepResult("done"))
    # the released step was left to the Python router, which asked the same policy
    released = world.engine.snapshot(snap.session_id).steps["b"]
    assert released.agent_id == "w3"
    seen = sys.modules[policy_module].policy.seen
    assert [ids for ids, _ in seen] == [("a",), ("b",)]
    # a policy that uses metrics gets each candidate's last day, a's success included
    assert seen[1][1]["w3"].succeeded == 1 and seen[1][1]["w1"].succeeded == 0
    # a session without its own policy keeps the default (least_loaded, routed in the script)
    other = world.engine.submit(
        OrchestrateRequest.model_validate({"goal": "g", "plan": plan(("x",))})
    )
    assert other.policy is None and other.steps["x"].agent_id == "w1"


def test_the_default_policy_can_be_a_user_policy(any_redis, policy_module):
    settings = Settings(policy_modules=policy_module, selection_policy="last_by_id")
    world = build_world(any_redis, settings, agents=AGENTS)
    assert world.router.inline_policy() == ""  # completions leave released steps to Python
    snap = world.engine.submit(
        OrchestrateRequest.model_validate({"goal": "g", "plan": plan(("a",))})
    )
    assert snap.steps["a"].agent_id == "w3"


def test_unknown_policies_are_refused_at_submit_and_at_start(fake_redis, policy_module):
    world = build_world(fake_redis, Settings(), agents=AGENTS)
    body = {"goal": "g", "plan": plan(("a",)), "policy": "last_by_id"}  # not loaded here
    with pytest.raises(UnknownPolicyError) as caught:
        world.engine.submit(OrchestrateRequest.model_validate(body))
    assert "least_loaded" in caught.value.message
    client = create_app(Settings(), redis_client=fake_redis, dispatcher=RecordingDispatcher())
    response = client.test_client().post("/api/orchestrator/orchestrate", json=body)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "unknown_policy"
    assert error["details"]["errors"][0]["location"] == "body.policy"
    bad = client.test_client().post(
        "/api/orchestrator/orchestrate", json={**body, "policy": "Not A Name"}
    )
    assert bad.status_code == 422
    with pytest.raises(ConfigurationError, match="MEOWSTIK_SELECTION_POLICY: no selection"):
        load_policies(Settings(selection_policy="nobody_defines_this"))
    with pytest.raises(ConfigurationError, match="cannot import"):
        load_policies(Settings(policy_modules="no_such_policy_module_here"))
    assert "last_by_id" in load_policies(Settings(policy_modules=policy_module))


def test_a_policy_is_defined_once_and_named_properly():
    catalog = PolicyCatalog()
    with pytest.raises(ConfigurationError, match="defined twice"):
        catalog.add(BUILTINS[0], "module x")
    nameless = type("Nameless", (SelectionPolicy,), {"name": "Bad Name"})()
    with pytest.raises(ConfigurationError, match="lowercase"):
        catalog.add(nameless, "module y")


def registered(agent_id, load, priority, ncaps):
    caps = [Capability(name="work")] + [Capability(name=f"extra_{i}") for i in range(ncaps - 1)]
    return RegisteredAgent(
        id=agent_id,
        name=agent_id,
        type="t",
        max_load=10,
        priority=priority,
        capabilities=caps,
        current_load=load,
    )


def test_the_spec_example_ranks_exactly_like_least_loaded():
    rng = random.Random(21)
    step = StepToRoute("s", ("x",), ("work",))
    for _ in range(300):
        fleet = [
            registered(f"a{i}", rng.randint(0, 3), rng.randint(-1, 2), rng.randint(1, 3))
            for i in range(rng.randint(1, 7))
        ]
        expected = [a.id for a in least_loaded(fleet)]
        assert [a.id for a in rank_candidates(spec_policy, fleet, step).agents] == expected


def test_a_policy_cannot_drop_or_invent_candidates():
    class Sloppy(SelectionPolicy):
        name = "sloppy"

        def rank(self, candidates, step):
            return ["ghost", candidates[-1].id]  # an unknown id, and one of three

    fleet = [registered("a", 2, 0, 1), registered("b", 0, 0, 1), registered("c", 1, 0, 1)]
    ranked = rank_candidates(Sloppy(), fleet, StepToRoute("s", ("x",), ("work",)))
    assert [a.id for a in ranked.agents] == ["c", "b", "a"]  # its pick, then the rest by load


def test_a_module_may_be_named_by_its_file(tmp_path, any_redis):
    path = tmp_path / "by_path_policy.py"
    path.write_text(POLICY_MODULE.replace('"last_by_id"', '"last_by_path"'))
    try:
        catalog = load_policies(Settings(policy_modules=str(path)))
        assert "last_by_path" in catalog
        with pytest.raises(ConfigurationError, match="no Python file"):
            load_policies(Settings(policy_modules=str(tmp_path / "missing.py")))
    finally:
        sys.modules.pop("meowstik_plugin_by_path_policy", None)


def test_a_process_without_the_sessions_policy_routes_with_the_default_and_says_so(
    any_redis, policy_module
):
    api_side = build_world(any_redis, Settings(policy_modules=policy_module), agents=AGENTS)
    body = {"goal": "g", "plan": plan(("a",), ("b", "a")), "policy": "last_by_id"}
    snap = api_side.engine.submit(OrchestrateRequest.model_validate(body))
    # a worker started without MEOWSTIK_POLICY_MODULES completes a and routes b
    worker_side = build_world(any_redis, Settings(), agents=AGENTS)
    run = worker_side.lifecycle.begin(snap.session_id, "a", "w3")
    assert isinstance(run, StepRun)
    worker_side.lifecycle.succeed(run, StepResult("done"))
    assert worker_side.engine.snapshot(snap.session_id).steps["b"].agent_id == "w1"
    entries = worker_side.sessions._logbook.session_entries(snap.session_id)
    warning = [e for e in entries if e["message"].startswith("Selection policy missing")]
    assert warning and warning[0]["data"]["policy"] == "last_by_id"
