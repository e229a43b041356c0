"""Does the learned policy learn? A simulated fleet (benchmarks/learn_agents.py: a good agent, a
5x slower one, one that fails 30 % of its steps; two slots each) on a real cluster (one embedded
redis-server, a worker, the API), 500 one-step sessions submitted over HTTP, four in flight,
under least_loaded and then, on a fresh Redis, under learned. Prints, per block of 100 steps, the
session success rate, the mean step latency and the share of steps each agent got; then the
criteria of issue 21: after the first 100 steps learned sends under 10 % to the flaky agent, and
its success rate beats least_loaded's. Exit status 1 when a criterion fails.

    make learn-bench          (or: .venv/bin/python -m benchmarks.learn [--steps N])
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import redis
import requests

from cli.embedded_redis import EmbeddedRedis
from tests.support.cluster import Cluster
from tests.support.redis_server import free_port

AGENTS = ("sim-good", "sim-slow", "sim-flaky")
IN_FLIGHT = 4
BLOCK = 100


@dataclass
class Outcome:
    index: int
    agent: str
    ok: bool
    seconds: float


EXPERIMENT = {
    "name": "learn-bench",
    "variants": [
        {"name": "least_loaded", "policy": "least_loaded"},
        {"name": "learned", "policy": "learned"},
    ],
    "metrics": ["success", "durationS"],
}


def run_policy(
    policy: str, steps: int, workdir: Path, experiment: bool = False
) -> tuple[list[Outcome], dict | None]:
    """``steps`` sessions under ``policy``; with ``experiment``, as the A/B experiment
    EXPERIMENT instead (each session gets a variant), and its report."""
    with EmbeddedRedis(workdir / policy, free_port()) as server:
        env = {
            "MEOWSTIK_AGENT_MODULES": "benchmarks.learn_agents",
            "MEOWSTIK_STEP_MAX_ATTEMPTS": "1",
            "MEOWSTIK_MAX_FALLBACKS": "0",
            "MEOWSTIK_CIRCUIT_FAILURE_THRESHOLD": "1000000",  # the bandit, not the breaker
        }
        logs = workdir / f"{policy}-logs"
        logs.mkdir(parents=True, exist_ok=True)
        cluster = Cluster(server.url, logs, env)
        try:
            cluster.start_worker(concurrency=6, agents=",".join(AGENTS))
            cluster.start_api()
            cluster.wait_ready(set(AGENTS))
            if experiment:
                created = requests.post(
                    f"{cluster.api_url}/api/orchestrator/experiments", json=EXPERIMENT, timeout=10
                )
                created.raise_for_status()
            with ThreadPoolExecutor(IN_FLIGHT) as pool:
                outcomes = list(
                    pool.map(lambda i: one_session(cluster, policy, i, experiment), range(steps))
                )
            report = None
            if experiment:
                url = f"{cluster.api_url}/api/orchestrator/experiments/{EXPERIMENT['name']}"
                report = requests.get(url, timeout=30).json()
            return outcomes, report
        finally:
            cluster.stop()
            redis.Redis.from_url(server.url).close()


def one_session(cluster: Cluster, policy: str, index: int, experiment: bool) -> Outcome:
    plan = {"steps": [{"id": "s", "title": "work", "requiredCapabilities": ["sim_work"]}]}
    body: dict = {"goal": f"learn {index}", "plan": plan}
    if experiment:
        body["experiment"] = EXPERIMENT["name"]
    else:
        body["policy"] = policy
    submitted = cluster.submit(body)
    done = cluster.wait_session(submitted["sessionId"], timeout_s=60)
    state = done["steps"]["s"]
    started, finished = state.get("startedAt"), state.get("finishedAt")
    seconds = (iso(finished) - iso(started)) if started and finished else float("nan")
    return Outcome(index, state.get("agentId") or "-", done["status"] == "completed", seconds)


def iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def blocks(outcomes: list[Outcome]) -> list[dict]:
    rows = []
    for start in range(0, len(outcomes), BLOCK):
        chunk = outcomes[start : start + BLOCK]
        shares = Counter(o.agent for o in chunk)
        rows.append(
            {
                "steps": f"{start + 1}-{start + len(chunk)}",
                "success": sum(o.ok for o in chunk) / len(chunk),
                "meanS": sum(o.seconds for o in chunk) / len(chunk),
                "share": {a: shares[a] / len(chunk) for a in AGENTS},
            }
        )
    return rows


def summary(outcomes: list[Outcome]) -> dict:
    after = outcomes[BLOCK:]
    return {
        "success": sum(o.ok for o in outcomes) / len(outcomes),
        "successAfterFirstBlock": sum(o.ok for o in after) / max(len(after), 1),
        "flakyShareAfterFirstBlock": sum(o.agent == "sim-flaky" for o in after)
        / max(len(after), 1),
        "meanS": sum(o.seconds for o in outcomes) / len(outcomes),
        "blocks": blocks(outcomes),
    }


def print_policy(name: str, result: dict) -> None:
    print(f"\n{name}: success {result['success']:.1%}, mean step {result['meanS'] * 1000:.0f} ms")
    print(
        f"  {'steps':>9}  {'success':>7}  {'mean ms':>7}  " + "  ".join(f"{a:>9}" for a in AGENTS)
    )
    for row in result["blocks"]:
        shares = "  ".join(f"{row['share'][a]:>9.0%}" for a in AGENTS)
        print(f"  {row['steps']:>9}  {row['success']:>7.0%}  {row['meanS'] * 1000:>7.0f}  {shares}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--output", type=Path, default=Path("bench-results/learn.json"))
    args = parser.parse_args(argv)
    results = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for policy in ("least_loaded", "learned"):
            outcomes, _ = run_policy(policy, args.steps, Path(tmp))
            results[policy] = summary(sorted(outcomes, key=lambda o: o.index))
            print_policy(policy, results[policy])
        _, report = run_policy("experiment", args.steps, Path(tmp), experiment=True)
    assert report is not None
    print(f"\nthe same as an A/B experiment ({args.steps} sessions, assigned by session):")
    for variant in report["variants"]:
        success, duration = variant["success"], variant["durationS"]
        interval = success.get("interval") or {}
        print(
            f"  {variant['name']:>12}: {variant['ended']} sessions, success "
            f"{success['mean']:.1%} [{interval.get('low', 0):.1%}, {interval.get('high', 0):.1%}],"
            f" duration p50 {duration['p50'] * 1000:.0f} ms"
        )
    for verdict in report["verdicts"]:
        p_value = "-" if verdict["pValue"] is None else f"{verdict['pValue']:.2g}"
        better = verdict["better"]
        said = f"better: {better}" if better else "no significant difference"
        print(
            f"  {verdict['metric']}: {verdict['variant']} - {verdict['control']} = "
            f"{verdict['difference']:+.4f}, p = {p_value} ({verdict['test']}): {said}"
        )
    success_verdict = next(v for v in report["verdicts"] if v["metric"] == "success")
    results["experiment"] = report
    learned, baseline = results["learned"], results["least_loaded"]
    checks = {
        "learned sends < 10 % to the flaky agent after the first 100 steps": (
            learned["flakyShareAfterFirstBlock"] < 0.10
        ),
        "learned's session success rate beats least_loaded's": (
            learned["success"] > baseline["success"]
        ),
        "the experiment's report names learned better on success, significantly": (
            success_verdict["significant"] and success_verdict["better"] == "learned"
        ),
    }
    took = time.monotonic() - started
    print(f"\n{args.steps} steps per policy, {IN_FLIGHT} in flight, in {took:.0f} s")
    for name, ok in checks.items():
        print(f"  {'yes' if ok else 'NO '}  {name}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"results": results, "checks": checks}, indent=2))
    print(f"written to {args.output}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
