"""`make bench`: the product's own figures on real Redis, a real worker and the API.

Shapes go through the HTTP API as explicit plans of no-op steps; timings come from the
session record (ms resolution), not from polling. Each shape runs RUNS times; the table shows
median, min and max. Raw-Celery baselines in the same run come with the performance issue.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis

from cli.embedded_redis import EmbeddedRedis
from tests.support.cluster import Cluster
from tests.support.redis_server import free_port

RUNS = 3
RESULTS_DIR = Path("bench-results")


def noop(step_id: str, *deps: str) -> dict:
    return {
        "id": step_id,
        "title": step_id,
        "requiredCapabilities": ["noop_work"],
        "dependsOn": list(deps),
    }


def chain(length: int) -> list[dict]:
    return [noop("s0")] + [noop(f"s{i}", f"s{i - 1}") for i in range(1, length)]


def wide(width: int) -> list[dict]:
    middle = [noop(f"m{i}", "root") for i in range(width)]
    return [noop("root"), *middle, noop("sink", *(m["id"] for m in middle))]


def layered(layers: int, width: int) -> list[dict]:
    steps, previous = [], []
    for layer in range(layers):
        current = [noop(f"l{layer}n{i}", *previous) for i in range(width)]
        steps += current
        previous = [step["id"] for step in current]
    return steps


def ms(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000


def hop_latencies_ms(session: dict) -> list[float]:
    """For every step with dependencies: its start minus its last dependency's finish (for a wide
    layer this includes the wait for a free worker process, not only the release)."""
    steps = session["steps"]
    return [
        ms(s["startedAt"]) - max(ms(steps[d]["finishedAt"]) for d in s["dependsOn"])
        for s in steps.values()
        if s["dependsOn"]
    ]


def commands_processed(client: redis.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


def commands_per_status_read(cluster: Cluster, client: redis.Redis, session_id: str) -> int:
    """Redis commands one GET of a session costs, to subtract the benchmark's own polling."""
    before = commands_processed(client)
    cluster.session(session_id)
    return commands_processed(client) - before - 1  # the INFO call itself


def run_shape(cluster: Cluster, client: redis.Redis, name: str, steps: list[dict]) -> dict:
    walls, hops, first_starts, per_step_cmds = [], [], [], []
    for _ in range(RUNS):
        before, reads_before = commands_processed(client), cluster.status_reads
        start = time.perf_counter()
        sid = cluster.submit({"goal": f"bench {name}", "plan": {"steps": steps}})["sessionId"]
        done = cluster.wait_session(sid, timeout_s=300)
        walls.append(time.perf_counter() - start)
        used = commands_processed(client) - before - 1
        reads = cluster.status_reads - reads_before
        assert done["status"] == "completed", done["errors"]
        polling = reads * commands_per_status_read(cluster, client, sid)
        per_step_cmds.append((used - polling) / len(steps))
        hops += hop_latencies_ms(done)
        first_starts.append(
            min(ms(s["startedAt"]) for s in done["steps"].values()) - ms(done["startTime"])
        )
    return {
        "shape": name,
        "steps": len(steps),
        "wallS": {"median": statistics.median(walls), "min": min(walls), "max": max(walls)},
        "stepsPerS": len(steps) / statistics.median(walls),
        "releaseToStartMs": _percentiles(hops),
        "submitToFirstStartMs": statistics.median(first_starts),
        "redisCommandsPerStep": statistics.median(per_step_cmds),
    }


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99)}


def print_table(results: list[dict]) -> None:
    print(
        f"{'shape':<16}{'steps':>6}{'wall med s':>11}{'min':>7}{'max':>7}{'steps/s':>8}"
        f"{'submit>1st ms':>14}{'dep>start p50':>14}{'p95':>7}{'cmds/step':>10}"
    )
    for r in results:
        hop = r["releaseToStartMs"]
        print(
            f"{r['shape']:<16}{r['steps']:>6}{r['wallS']['median']:>11.3f}{r['wallS']['min']:>7.3f}"
            f"{r['wallS']['max']:>7.3f}{r['stepsPerS']:>8.0f}{r['submitToFirstStartMs']:>14.1f}"
            f"{hop.get('p50', 0):>14.1f}{hop.get('p95', 0):>7.1f}"
            f"{r['redisCommandsPerStep']:>10.1f}"
        )


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp), free_port()) as server:
        cluster = Cluster(server.url, Path(tmp), {"MEOWSTIK_AGENT_MODULES": "benchmarks.agents"})
        try:
            cluster.start_worker(concurrency=2, agents="noop-001")
            cluster.start_api()
            cluster.wait_ready({"noop-001"})
            client = redis.Redis.from_url(server.url)
            shapes = [
                ("single", [noop("only")]),
                ("chain 100", chain(100)),
                ("wide 1-200-1", wide(200)),
                ("layered 5x50", layered(5, 50)),
            ]
            results = [run_shape(cluster, client, name, steps) for name, steps in shapes]
        finally:
            cluster.stop()
    print(
        f"Meowstik benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"Python {platform.python_version()}, {RUNS} runs per shape, worker concurrency 2"
    )
    print_table(results)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "latest.json").write_text(json.dumps(results, indent=2))
    print(f"written to {RESULTS_DIR / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
