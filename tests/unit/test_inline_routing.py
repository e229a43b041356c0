"""complete_step routes the steps it releases inside Redis (one round trip instead of three);
its ranking (_slots.lua ranked_candidates) must agree with orchestrator/selection.py, which
routes roots, retries and fallbacks. Random fleets, every policy, both backends."""

import json
import random

import pytest

from orchestrator.core.ids import slot_member
from orchestrator.core.models import AgentDefinition, Capability
from orchestrator.core.selection import POLICIES, rank
from orchestrator.settings import Settings
from orchestrator.store.prelude import prelude
from tests.support.world import build_world

CAPS = ("alpha", "beta")
# returns the ranked candidate ids for a step record ARGV[3] (JSON), as complete_step sees them
# (ARGV[1] is the key prefix, as in every script with the prelude)
RANK_SNIPPET = """
local out = {}
for i, c in ipairs(ranked_candidates(cjson.decode(ARGV[3]), tonumber(ARGV[2]),
  ARGV[4], tonumber(ARGV[5]))) do out[i] = c.id end
return out
"""


def fleet(rng: random.Random) -> list[AgentDefinition]:
    agents = []
    for i in range(rng.randint(1, 6)):
        caps = rng.choice([["alpha"], ["alpha", "beta"], ["beta"], ["alpha", "beta", "gamma"]])
        agents.append(
            AgentDefinition(
                id=f"a{i}",
                name=f"a{i}",
                type=rng.choice(["x", "y"]),
                max_load=rng.randint(1, 3),
                priority=rng.randint(0, 3),
                capabilities=[Capability(name=c) for c in caps],
            )
        )
    return agents


@pytest.mark.parametrize("seed", range(150))
def test_lua_ranking_equals_the_python_policies(any_redis, seed):
    rng = random.Random(seed)
    world = build_world(any_redis, Settings(), agents=tuple(fleet(rng)))
    now = world.now_ms()
    keys = world.sessions.keys
    for agent_id in [a.id for a in world.registry.candidates(["alpha"], now)] + ["a0"]:
        for n in range(rng.randint(0, 3)):  # live and expired slots
            expiry = now + rng.choice([-5, 10_000])
            any_redis.zadd(keys.agent_slots(agent_id), {slot_member("s", f"{agent_id}{n}"): expiry})
        if rng.random() < 0.2:
            any_redis.hset(keys.agent(agent_id), "status", rng.choice(["inactive", "draining"]))
        if rng.random() < 0.2:
            any_redis.hset(keys.agent(agent_id), "circuitOpenUntil", now + 1000)
        if rng.random() < 0.15:
            any_redis.hset(keys.agent(agent_id), "aliveUntil", now - 1)
    required = list(rng.choice([("alpha",), ("alpha", "beta")]))
    agent_type = rng.choice([None, "x"])
    excluded = rng.sample(["a0", "a1", "a2"], rng.randint(0, 2))
    record = {"caps": required, "agentType": agent_type, "failedAgents": excluded}
    script = any_redis.register_script(prelude() + RANK_SNIPPET)
    for policy in POLICIES:
        rotation = rng.randint(0, 7)
        expected = rank(
            world.registry.candidates(required, now),
            required,
            agent_type,
            excluded,
            policy=policy,
            rotation=rotation,
        )
        got = script(args=[keys.prefix, now, json.dumps(record), policy, rotation])
        assert [g.decode() for g in got] == [a.id for a in expected], policy


def test_a_released_step_is_routed_in_the_completing_call(any_redis):
    world = build_world(any_redis, Settings())
    request = {
        "goal": "two",
        "plan": {
            "steps": [
                {"id": "a", "title": "A", "requiredCapabilities": ["web_research"]},
                {
                    "id": "b",
                    "title": "B",
                    "requiredCapabilities": ["web_research"],
                    "dependsOn": ["a"],
                },
            ]
        },
    }
    from orchestrator.core.models import OrchestrateRequest
    from orchestrator.core.steps import StepResult

    sid = world.engine.submit(OrchestrateRequest.model_validate(request)).session_id
    run = world.lifecycle.begin(sid, "a", "researcher-001")
    transition = world.lifecycle.succeed(run, StepResult("done"))
    assert [step for step, _agent, _queue in transition.routed] == ["b"]
    assert transition.routed[0][1] == "researcher-001"
    assert world.dispatcher.step_ids[-1] == "b"  # dispatched, without a routing round trip
    record = world.sessions.step_record(sid, "b")
    assert record["agentId"] == "researcher-001" and record["status"] == "queued"
