"""`make chaos`: run a cluster under faults for CHAOS_MINUTES, then check what it recorded.

It starts the cluster of tools/chaos_cluster.py (embedded Redis with AOF, the API, two Python
workers, two remote workers for the slow HTTP agent, a TCP proxy per worker), keeps a few
sessions of mixed shapes in flight (tools/chaos_plans.py), and injects a fault every few
seconds (tools/chaos_faults.py): a killed pool child or worker, a killed Redis, a frozen worker,
a worker cut off from Redis, each aimed at a process running a step. Kinds not hit yet come
first. Everything random comes from one seed, printed at the start (``--seed`` replays it; the
timing of the processes is not replayed).

When the time is up it stops injecting and submitting, heals everything, and runs the outside
checker (tools/chaos_check.py) against the API and Redis while it keeps the cluster supervised.
Prints a markdown summary, writes the report (JSON and markdown) under ``--output``, and exits
1 when the checker has a finding. The cluster's data and logs stay in ``--data-dir`` (a
temporary directory, removed after a run without findings unless ``--keep``).
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis
import requests

from tools.chaos_check import Checker, RequestsHttp, markdown
from tools.chaos_cluster import CLUSTER_SETTINGS, ChaosCluster
from tools.chaos_faults import KINDS, Injector
from tools.chaos_plans import session_body
from tools.chaos_rules import TERMINAL

DEFAULT_MINUTES = 10.0
IN_FLIGHT = 4  # sessions kept running at once
GAP_S = (3.0, 8.0)  # between the end of one fault and the start of the next
SUBMIT_RETRY_S = 30.0  # a submit is retried (same Idempotency-Key) this long: Redis may be down
CHECK_WAIT_S = 300.0
CHECK_SETTLE_S = 30.0  # longer than a lock's TTL (chaos_agents.LOCK_TTL_S) and a lease
RESULTS_DIR = Path("chaos-results")


class Submitter(threading.Thread):
    """Keeps IN_FLIGHT sessions running: submits a new one whenever one ends."""

    def __init__(self, api_url: str, rng: random.Random, beacons: str) -> None:
        super().__init__(name="chaos-submitter", daemon=True)
        self.api_url = api_url
        self.rng = rng
        self.beacons = beacons
        self.http = requests.Session()
        self.accepted: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.active: set[str] = set()
        self.halt = threading.Event()

    def run(self) -> None:
        number = 0
        while not self.halt.is_set():
            self._forget_finished()
            while len(self.active) < IN_FLIGHT and not self.halt.is_set():
                number += 1
                self._submit(number)
            self.halt.wait(0.5)

    def _submit(self, number: int) -> None:
        shape, body = session_body(self.rng, number, self.beacons)
        key = f"chaos-{number}-{self.rng.getrandbits(64):016x}"
        deadline, last = time.monotonic() + SUBMIT_RETRY_S, ""
        while time.monotonic() < deadline and not self.halt.is_set():
            try:
                response = self.http.post(
                    f"{self.api_url}/api/orchestrator/orchestrate",
                    json=body,
                    headers={"Idempotency-Key": key},
                    timeout=10,
                )
            except requests.RequestException as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code in (200, 202):
                    sid = response.json()["sessionId"]
                    steps = len(body["plan"]["steps"])
                    self.accepted.append({"sessionId": sid, "shape": shape, "steps": steps})
                    self.active.add(sid)
                    return
                last = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code < 500 and response.status_code != 429:
                    break
            time.sleep(0.5)
        self.refused.append({"number": number, "shape": shape, "reason": last})

    def _forget_finished(self) -> None:
        for sid in sorted(self.active):
            try:
                response = self.http.get(
                    f"{self.api_url}/api/orchestrator/sessions/{sid}", timeout=5
                )
            except requests.RequestException:
                continue
            if response.status_code == 200 and response.json()["status"] in TERMINAL:
                self.active.discard(sid)


def next_kind(rng: random.Random, injector: Injector) -> str:
    """A kind not hit yet (in a random order) until every kind has been hit, then any."""
    summary = injector.summary()
    unhit = [kind for kind in KINDS if summary[kind]["hits"] == 0]
    return rng.choice(unhit or list(KINDS))


def say(line: str) -> None:
    print(line, flush=True)


def inject_until(deadline: float, cluster: ChaosCluster, injector: Injector, rng) -> None:
    next_at = time.monotonic() + rng.uniform(*GAP_S)
    while time.monotonic() < deadline:
        cluster.supervise()
        if time.monotonic() >= next_at:
            done = injector.inject(next_kind(rng, injector))
            say(
                f"[{done.at_s:7.1f} s] {done.kind:<15} {done.target:<22} "
                f"{'hit ' + (done.step or '') if done.hit else 'no step hit'}"
                + ("" if done.taken_over is None else f", taken over: {done.taken_over}")
                + (f" {done.detail}" if done.detail else "")
            )
            next_at = time.monotonic() + rng.uniform(*GAP_S)
        time.sleep(0.1)


def check_supervised(cluster: ChaosCluster, accepted: set[str]) -> dict[str, Any]:
    """Run the checker in a thread while this one keeps restarting what exits."""
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            checker = Checker(
                RequestsHttp(cluster.api_url), redis.Redis.from_url(cluster.redis.url)
            )
            result.update(
                checker.run(accepted, wait_s=CHECK_WAIT_S, settle_s=CHECK_SETTLE_S, say=say)
            )
        except Exception as exc:  # noqa: BLE001 - a checker that could not read is a finding
            result["findings"] = [f"the checker could not finish: {type(exc).__name__}: {exc}"]

    thread = threading.Thread(target=work, name="chaos-check", daemon=True)
    thread.start()
    while thread.is_alive():
        cluster.supervise()
        thread.join(0.2)
    return result


def run(minutes: float, seed: int, data_dir: Path) -> dict[str, Any]:
    """Start the cluster, submit and inject for ``minutes``, check, stop; the report."""
    rng = random.Random(seed)
    cluster = ChaosCluster(data_dir)
    timings = {"began": time.monotonic()}
    try:
        cluster.start()
        timings["chaos"] = time.monotonic()
        up_s = timings["chaos"] - timings["began"]
        say(f"cluster up in {up_s:.1f} s: API {cluster.api_url}, Redis {cluster.redis.url}")
        injector = Injector(cluster, random.Random(rng.getrandbits(64)), timings["chaos"])
        submitter = Submitter(
            cluster.api_url, random.Random(rng.getrandbits(64)), str(cluster.beacons)
        )
        submitter.start()
        inject_until(timings["chaos"] + minutes * 60, cluster, injector, rng)
        submitter.halt.set()
        while submitter.is_alive():  # a submit may be retrying: keep restarting what exits
            cluster.supervise()
            submitter.join(0.2)
        timings["check"] = time.monotonic()
        accepted = {s["sessionId"] for s in submitter.accepted}
        (data_dir / "accepted.json").write_text(json.dumps(sorted(accepted)))
        say(f"faults over; checking {len(accepted)} accepted sessions")
        check = check_supervised(cluster, accepted)
    finally:
        cluster.stop()
    timings["end"] = time.monotonic()
    report = {"seed": seed, "minutes": minutes, "settings": CLUSTER_SETTINGS}
    return report | figures_of(timings, cluster, submitter, injector, check)


def figures_of(
    timings: dict[str, float],
    cluster: ChaosCluster,
    submitter: Submitter,
    injector: Injector,
    check: dict[str, Any],
) -> dict[str, Any]:
    asked = cluster.http_agent.requests
    return {
        "durationS": {
            "start": round(timings["chaos"] - timings["began"], 1),
            "chaos": round(timings["check"] - timings["chaos"], 1),
            "total": round(timings["end"] - timings["began"], 1),
        },
        "sessions": {
            "submitted": len(submitter.accepted) + len(submitter.refused),
            "accepted": len(submitter.accepted),
            "refused": submitter.refused,
            "byShape": dict(Counter(s["shape"] for s in submitter.accepted)),
            "steps": sum(s["steps"] for s in submitter.accepted),
        },
        "injections": injector.summary(),
        "injectionLog": [i.to_json() for i in injector.injections],
        "workerExits": {
            **{w.name: w.unplanned_exits for w in cluster.workers.values()},
            "api": cluster.api_exits,
        },
        "httpAgent": {
            "steps": len(asked),
            "requests": sum(asked.values()),
            "stepsAskedMoreThanOnce": sum(1 for n in asked.values() if n > 1),
        },
        "check": check,
        "findings": check.get("findings", []),
    }


def summary(report: dict[str, Any]) -> str:
    sessions, durations = report["sessions"], report["durationS"]
    rows = [
        f"| {kind} | {row['injected']} | {row['hits']} | {row.get('takenOver', '–')} |"
        for kind, row in report["injections"].items()
    ]
    exits = {name: len(found) for name, found in report["workerExits"].items() if found}
    http = report["httpAgent"]
    lines = [
        f"# Chaos run: seed {report['seed']}, {report['minutes']:g} min",
        f"- duration: {durations['chaos']} s of faults ({durations['start']} s to start, "
        f"{durations['total']} s in all)",
        f"- sessions: {sessions['submitted']} submitted, {sessions['accepted']} accepted, "
        f"{len(sessions['refused'])} refused; shapes {sessions['byShape']}; "
        f"{sessions['steps']} steps",
        "",
        "| fault | injected | hit a running step | taken over during the fault |",
        "|---|---|---|---|",
        *rows,
        "",
        f"- processes that exited by themselves (restarted): {exits or 'none'}",
        f"- HTTP agent: {http['requests']} requests for {http['steps']} steps, "
        f"{http['stepsAskedMoreThanOnce']} steps asked more than once",
    ]
    if "figures" in report["check"]:
        lines += ["", markdown(report["check"])]
    else:
        lines += ["", *(f"- finding: {line}" for line in report["findings"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES)
    parser.add_argument("--seed", type=int, default=None, help="replay a run's random choices")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR, help="report directory")
    parser.add_argument("--data-dir", type=Path, default=None, help="cluster data and logs")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args(argv)
    # SIGTERM (a CI timeout) stops the cluster as Ctrl-C does: nothing stays frozen or running
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="meowstik-chaos-"))
    say(f"chaos: seed {seed} (CHAOS_SEED={seed} replays it), {args.minutes:g} min, data {data_dir}")
    report = run(args.minutes, seed, data_dir)
    text = summary(report)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "latest.json").write_text(json.dumps(report, indent=2))
    (args.output / "latest.md").write_text(text + "\n")
    say("\n" + text)
    say(f"\nreport: {args.output / 'latest.json'}, {args.output / 'latest.md'}")
    if report["findings"] or args.keep:
        say(f"cluster data and logs kept in {data_dir}")
    else:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 1 if report["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
