"""What a selection policy costs per routing decision, in process against one embedded
redis-server: a 300-step chain (each completion releases the next step, which must be routed)
run through the step lifecycle with the built-in least_loaded (ranked inside complete_step.lua),
the spec example as a Python policy (ranked in Python after the completion), and a Python policy
that reads its candidates' metrics. Prints per-step time and Redis commands; no Celery.

    .venv/bin/python -m benchmarks.policies
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import redis

from cli.embedded_redis import EmbeddedRedis
from orchestrator.core.models import AgentDefinition, Capability, OrchestrateRequest
from orchestrator.core.policies import SelectionPolicy
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from tests.support.redis_server import free_port
from tests.support.world import build_world

STEPS = 300
AGENTS = tuple(
    AgentDefinition(
        id=f"b{i}", name=f"b{i}", type="t", max_load=4, capabilities=[Capability(name="work")]
    )
    for i in range(3)
)


class MostReliable(SelectionPolicy):
    name = "bench_most_reliable"
    uses_metrics = True

    def rank(self, candidates, step):
        return sorted(candidates, key=lambda c: (-(c.metrics.success_rate or 0), c.load, c.id))


most_reliable = MostReliable()


def commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def run(client: redis.Redis, policy: str, prefix: str) -> tuple[float, float]:
    modules = "examples.policies.spec_select_agent,benchmarks.policies"
    world = build_world(client, Settings(policy_modules=modules), agents=AGENTS, prefix=prefix)
    steps = [
        {"id": f"s{i}", "title": "s", "requiredCapabilities": ["work"],
         "dependsOn": [f"s{i - 1}"] if i else []}
        for i in range(STEPS)
    ]  # fmt: skip
    body = {"goal": "bench", "plan": {"steps": steps}, "policy": policy}
    sid = world.engine.submit(OrchestrateRequest.model_validate(body)).session_id
    before, started = commands(client), time.perf_counter()
    for i in range(STEPS):
        agent = world.sessions.step_record(sid, f"s{i}")["agentId"]
        run = world.lifecycle.begin(sid, f"s{i}", agent)
        world.lifecycle.succeed(run, StepResult("ok"))
    elapsed = time.perf_counter() - started
    # minus the harness's own step_record reads (one HGET each)
    return elapsed / STEPS * 1000, (commands(client) - before - STEPS) / STEPS


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp), free_port()) as server:
        client = redis.Redis.from_url(server.url)
        print(f"{STEPS}-step chain, per step (begin + complete + routing the released step):")
        for policy in ("least_loaded", "spec_select_agent", "bench_most_reliable"):
            runs = [run(client, policy, f"bench{n}{policy}") for n in range(3)]
            ms = statistics.median(r[0] for r in runs)
            cmds = statistics.median(r[1] for r in runs)
            print(f"  {policy:22s} {ms:6.2f} ms  {cmds:6.1f} Redis commands")


if __name__ == "__main__":
    main()
