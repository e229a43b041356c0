"""The learned policy (issue 21): cold start like least_loaded, Thompson sampling on the window's
successes and failures with latency and cost penalties, a floor of exploration, explained
decisions, and maxLoad kept (routing reserves only where there is room)."""

from collections import Counter

from orchestrator.core.agent_metrics import AgentMetrics, Latency, OutcomeCounts
from orchestrator.core.learned import LearnedPolicy, LearnedWeights
from orchestrator.core.models import (
    AgentDefinition,
    Capability,
    OrchestrateRequest,
    RegisteredAgent,
)
from orchestrator.core.policies import StepToRoute, rank_candidates
from orchestrator.core.selection import least_loaded
from orchestrator.core.step_runs import StepRun
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from tests.support.world import build_world

STEP = StepToRoute("s", ("x",), ("work",))


def agent(agent_id, load=0, priority=0):
    return RegisteredAgent(
        id=agent_id,
        name=agent_id,
        type="t",
        max_load=4,
        priority=priority,
        capabilities=[Capability(name="work")],
        current_load=load,
    )


def metrics(agent_id, succeeded, failed, mean_s=0.1, cost=None):
    counts = OutcomeCounts(started=succeeded + failed, succeeded=succeeded, failed=failed)
    return AgentMetrics(
        agent_id=agent_id,
        window="1h",
        **counts.model_dump(),
        run=Latency(count=succeeded + failed, mean_s=mean_s),
        cost_per_run_usd=cost,
        by_capability={"work": counts},
    )


def firsts(policy, fleet, evidence, decisions=2000):
    got = Counter()
    for _ in range(decisions):
        got[rank_candidates(policy, fleet, STEP, evidence).agents[0].id] += 1
    return got


def test_cold_start_ranks_like_least_loaded_and_says_so():
    fleet = [agent("a", load=2), agent("b", load=0, priority=1), agent("c", load=0)]
    ranking = rank_candidates(LearnedPolicy(seed=1), fleet, STEP, {})
    assert [a.id for a in ranking.agents] == [a.id for a in least_loaded(fleet)] == ["b", "c", "a"]
    assert set(ranking.notes.values()) == {"cold start"}


def test_it_prefers_the_reliable_fast_agent_and_keeps_exploring():
    fleet = [agent("flaky"), agent("slow"), agent("good")]
    evidence = {
        "flaky": metrics("flaky", 21, 9, mean_s=0.1),  # 30 % failures
        "slow": metrics("slow", 30, 0, mean_s=5.0),  # 5x slower than the scale's half point
        "good": metrics("good", 30, 0, mean_s=0.1),
    }
    got = firsts(LearnedPolicy(LearnedWeights(exploration=0.05), seed=7), fleet, evidence)
    assert got["good"] > 0.8 * 2000
    assert got["flaky"] < 0.05 * 2000 and got["slow"] < got["good"]
    # the exploration floor: even a hopeless agent comes first now and then (about 5 % / 3)
    hopeless = {**evidence, "flaky": metrics("flaky", 0, 60)}
    got = firsts(LearnedPolicy(LearnedWeights(exploration=0.05), seed=3), fleet, hopeless)
    assert 0.005 * 2000 < got["flaky"] < 0.04 * 2000
    never = firsts(LearnedPolicy(LearnedWeights(exploration=0.0), seed=3), fleet, hopeless)
    assert never["flaky"] == 0


def test_cost_counts_against_an_agent_when_known():
    fleet = [agent("cheap"), agent("dear")]
    evidence = {
        "cheap": metrics("cheap", 40, 0, cost="0.001"),
        "dear": metrics("dear", 40, 0, cost="0.1"),
    }
    weights = LearnedWeights(exploration=0.0, cost_weight=0.5, cost_scale_usd=0.01)
    got = firsts(LearnedPolicy(weights, seed=5), fleet, evidence, 500)
    assert got["cheap"] > 0.95 * 500


def test_a_learned_session_explains_each_decision_and_never_overloads(any_redis):
    agents = tuple(
        AgentDefinition(id=i, name=i, type="t", max_load=1, capabilities=[Capability(name="work")])
        for i in ("l1", "l2")
    )
    world = build_world(any_redis, Settings(learned_exploration=0.0), agents=agents)
    steps = [{"id": s, "title": s, "requiredCapabilities": ["work"]} for s in ("a", "b", "c")]
    body = {"goal": "g", "plan": {"steps": steps}, "policy": "learned"}
    snap = world.engine.submit(OrchestrateRequest.model_validate(body))
    # one slot each: two steps routed, the third waits for capacity
    placed = {s: snap.steps[s].agent_id for s in "abc"}
    assert sorted(a for a in placed.values() if a) == ["l1", "l2"]
    assert [s for s, a in placed.items() if a is None] == ["c"]
    fetched = world.engine.snapshot(snap.session_id)
    routed = [s for s in "ab" if fetched.steps[s].routing]
    assert routed == ["a", "b"]
    why = fetched.steps["a"].routing
    assert why["policy"] == "learned" and why["agentId"] == fetched.steps["a"].agent_id
    assert set(why["notes"].values()) == {"cold start"}
    entries = world.sessions._logbook.session_entries(snap.session_id)
    assert [e["taskId"] for e in entries if e["message"] == "Step routed"] == ["a", "b"]
    run = world.lifecycle.begin(snap.session_id, "a", fetched.steps["a"].agent_id)
    assert isinstance(run, StepRun)
    world.lifecycle.succeed(run, StepResult("ok"))
    assert world.engine.snapshot(snap.session_id).steps["c"].agent_id is not None
