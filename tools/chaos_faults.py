"""The faults `make chaos` injects, each aimed where it proves something: at a process that is
running a step right now.

Kinds: ``kill_pool_child`` (SIGKILL the prefork child running a Python step; billiard starts a
new one), ``kill_worker`` (SIGKILL a whole worker, Python or remote, and start it again),
``kill_redis`` (SIGKILL redis-server and start it again on the same data), ``freeze`` (SIGSTOP
a worker's process group past the lease, then SIGCONT) and ``partition`` (its proxy to Redis
stalls or refuses past the lease, then heals).

An injection is a **hit** when a step was confirmed running on the target at the moment of the
fault: its record in Redis still said ``running``, with the attempt the process was running,
right after the process was stopped, killed or cut off. A freeze or partition hit is also
**taken over** when, before it ended, the step was recovered and claimed again by another run
(the fault outlasted the lease and the product noticed). Targets come from the Python agents'
beacons (``<pid>.json``) and the HTTP agent's requests in flight (matched to a remote worker by
the caller's local port).
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import redis

from orchestrator.store.keys import Keys
from tools.chaos_cluster import LEASE_S, ChaosCluster, Worker
from tools.tcp_proxy import REFUSE, STALL

KINDS = ("kill_pool_child", "kill_worker", "kill_redis", "freeze", "partition")
AIM_TIMEOUT_S = 10.0  # how long to look for a target running a step before striking anyway
AIM_POLL_S = 0.05
CONFIRM_DELAY_S = 0.3  # after a stop or cut: a completion already sent has reached Redis
RESTART_AFTER_S = (0.5, 3.0)
REDIS_DOWN_S = (0.5, 3.0)
PAST_LEASE_S = (1.0, 3.0)  # a freeze or partition lasts the lease plus this


@dataclass(frozen=True)
class Running:
    """A step a process runs now: which process (pid), of which worker."""

    worker: str
    pid: int
    session_id: str
    step_id: str
    attempt: int


@dataclass
class Injection:
    kind: str
    at_s: float
    target: str
    hit: bool = False
    step: str | None = None  # "<session>|<step>#<attempt>" of the step hit
    taken_over: bool | None = None
    duration_s: float = 0.0
    detail: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


class Injector:
    def __init__(self, cluster: ChaosCluster, rng: random.Random, started_at: float) -> None:
        self.cluster = cluster
        self.rng = rng
        self.started_at = started_at
        self.keys = Keys()
        self.client = cluster.client()  # reconnects by itself after Redis restarts
        self.injections: list[Injection] = []

    # --- what runs where ------------------------------------------------------------------------

    def running(self) -> list[Running]:
        """Steps running now, by process: beacons of Python agents, HTTP requests in flight."""
        found = []
        by_pid = {
            child.pid: worker
            for worker in self.cluster.workers.values()
            for child in worker.pool_children()
        }
        for path in Path(self.cluster.beacons).glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                pid, beacon = int(path.stem), json.loads(path.read_text())
                if pid in by_pid:
                    found.append(
                        Running(
                            by_pid[pid].name,
                            pid,
                            beacon["sessionId"],
                            beacon["stepId"],
                            int(beacon["attempt"]),
                        )
                    )
        ports = self._remote_ports()
        for request in self.cluster.http_agent.running():
            if request.client_port in ports:
                worker, pid = ports[request.client_port]
                found.append(
                    Running(worker, pid, request.session_id, request.step_id, request.attempt)
                )
        return found

    def _remote_ports(self) -> dict[int, tuple[str, int]]:
        """Local port -> (remote worker, pid) of every TCP connection the remote workers hold."""
        ports = {}
        for worker in self.cluster.workers.values():
            if not worker.remote or worker.pid is None:
                continue
            with contextlib.suppress(psutil.Error):
                for connection in psutil.Process(worker.pid).net_connections(kind="tcp"):
                    ports[connection.laddr.port] = (worker.name, worker.pid)
        return ports

    def record(self, step: Running) -> dict | None:
        """The step's record in Redis (a raw read); None when Redis does not answer."""
        try:
            raw = self.client.hget(self.keys.steps(step.session_id), step.step_id)
        except redis.RedisError:
            return None
        return json.loads(raw) if raw else {}

    def still_running(self, step: Running) -> bool:
        """Whether Redis still records the step running the attempt the process ran."""
        record = self.record(step) or {}
        return record.get("status") == "running" and record.get("attempts") == step.attempt

    def claims(self, step: Running) -> int:
        """The step's attempts (claims) so far; -1 when Redis does not answer."""
        record = self.record(step)
        return -1 if record is None else int(record.get("attempts", 0))

    def aim(self, eligible) -> Running | None:
        """A running step on a process ``eligible(Running)`` accepts, within AIM_TIMEOUT_S."""
        deadline = time.monotonic() + AIM_TIMEOUT_S
        while time.monotonic() < deadline:
            self.cluster.supervise()
            candidates = [r for r in self.running() if eligible(r) and self.still_running(r)]
            if candidates:
                return self.rng.choice(sorted(candidates, key=lambda r: (r.worker, r.pid)))
            time.sleep(AIM_POLL_S)
        return None

    # --- the faults -------------------------------------------------------------------------------

    def inject(self, kind: str) -> Injection:
        injection = getattr(self, kind)()
        self.injections.append(injection)
        return injection

    def _new(self, kind: str, target: str) -> Injection:
        return Injection(kind, round(time.monotonic() - self.started_at, 2), target)

    def _confirm(self, injection: Injection, step: Running | None) -> None:
        if step is not None:
            time.sleep(CONFIRM_DELAY_S)
            injection.hit = self.still_running(step)
            injection.step = f"{step.session_id}|{step.step_id}#{step.attempt}"

    def kill_pool_child(self) -> Injection:
        python = {w.name for w in self.cluster.workers.values() if not w.remote}
        step = self.aim(lambda r: r.worker in python)
        if step is None:  # no Python step running: any pool child
            worker = self.cluster.workers[self.rng.choice(sorted(python))]
            children = worker.pool_children()
            injection = self._new("kill_pool_child", worker.name)
            if children:
                with contextlib.suppress(psutil.Error):
                    self.rng.choice(children).kill()
            return injection
        injection = self._new("kill_pool_child", f"{step.worker} pid {step.pid}")
        with contextlib.suppress(psutil.Error):
            psutil.Process(step.pid).kill()
        self._confirm(injection, step)
        return injection

    def kill_worker(self) -> Injection:
        step = self.aim(lambda r: True)
        worker = self._worker_of(step)
        injection = self._new("kill_worker", worker.name)
        after_s = self.rng.uniform(*RESTART_AFTER_S)
        self.cluster.kill_worker(worker, after_s)
        self._confirm(injection, step)
        injection.detail = {"restartAfterS": round(after_s, 2)}
        return injection

    def kill_redis(self) -> Injection:
        self.aim(lambda r: True)
        injection = self._new("kill_redis", "redis-server")
        running = [r for r in self.running() if self.still_running(r)]
        down_s = self.rng.uniform(*REDIS_DOWN_S)
        self.cluster.kill_redis(down_s)
        injection.hit = bool(running)
        injection.detail = {"stepsRunning": len(running), "downS": round(down_s, 2)}
        while not self.cluster.redis_up:
            self.cluster.supervise()
            time.sleep(0.05)
        injection.duration_s = round(time.monotonic() - self.started_at - injection.at_s, 2)
        return injection

    def freeze(self) -> Injection:
        return self._cut_off("freeze")

    def partition(self) -> Injection:
        return self._cut_off("partition")

    def _cut_off(self, kind: str) -> Injection:
        """SIGSTOP, or a proxy that stalls or refuses, for the lease plus PAST_LEASE_S."""
        step = self.aim(lambda r: True)
        worker = self._worker_of(step)
        injection = self._new(kind, worker.name)
        hold_s = LEASE_S + self.rng.uniform(*PAST_LEASE_S)
        if kind == "freeze":
            self.cluster.freeze(worker)
        else:
            mode = self.rng.choice((STALL, REFUSE))
            worker.proxy.set_mode(mode)
            injection.detail = {"mode": mode}
        begun = time.monotonic()
        try:
            self._confirm(injection, step)
            claims_at_hit = self.claims(step) if injection.hit and step else 0
            while time.monotonic() - begun < hold_s:
                self.cluster.supervise()
                time.sleep(0.1)
            if injection.hit and step is not None:
                injection.taken_over = self.claims(step) > claims_at_hit
        finally:
            if kind == "freeze":
                self.cluster.resume(worker)
            else:
                worker.proxy.heal()
        injection.duration_s = round(time.monotonic() - begun, 2)
        return injection

    def _worker_of(self, step: Running | None) -> Worker:
        if step is not None:
            return self.cluster.workers[step.worker]
        return self.cluster.workers[self.rng.choice(sorted(self.cluster.workers))]

    # --- figures ----------------------------------------------------------------------------------

    def summary(self) -> dict[str, dict[str, int]]:
        """Per kind: injections, hits, and for freezes and partitions the hits taken over."""
        table = {}
        for kind in KINDS:
            done = [i for i in self.injections if i.kind == kind]
            table[kind] = {"injected": len(done), "hits": sum(i.hit for i in done)}
            if kind in ("freeze", "partition"):
                table[kind]["takenOver"] = sum(bool(i.taken_over) for i in done)
        return table
