"""Worker processes whose wall clock is wrong, and what tests read to judge them.

Two ways to skew a worker's clock: ``libfaketime`` (LD_PRELOAD; every clock_gettime of the
process and of the pool processes it forks, as a host whose clock is off) and a Python-only
``sitecustomize`` (tests/support/skewed_clock/) that shifts ``time.time``, ``time.time_ns`` and
``datetime.now`` from the interpreter's start. ``SKEW_KINDS`` names them for parametrized tests.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import redis
import requests

from orchestrator.store.keys import Keys
from tests.conftest import require
from tests.support.cluster import Cluster

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
SKEWED_CLOCK_DIR = Path(__file__).resolve().parent / "skewed_clock"
SKEW_KINDS = ("libfaketime", "python")
KEYS = Keys()


def skew_env(kind: str, skew_s: int, cluster: Cluster) -> dict[str, str]:
    """The variables that start a worker of ``cluster`` with its clock ``skew_s`` off."""
    if kind == "libfaketime":
        require(LIBFAKETIME.exists(), f"libfaketime at {LIBFAKETIME} (apt-get install faketime)")
        return {
            "LD_PRELOAD": str(LIBFAKETIME),
            "FAKETIME": f"{skew_s:+d}",
            # libfaketime 0.9.10 moves CLOCK_MONOTONIC too, and then a thread's timed wait
            # (threading.Event.wait(0.5)) never returns; a skewed host's monotonic clock is fine
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }
    if kind == "python":
        path = f"{SKEWED_CLOCK_DIR}{os.pathsep}{cluster.env.get('PYTHONPATH', '')}"
        return {"PYTHONPATH": path, "TEST_CLOCK_SKEW_S": str(skew_s)}
    raise ValueError(f"unknown clock skew kind {kind!r}; use one of {SKEW_KINDS}")


def logged_skew_s(cluster: Cluster, name: str, now_s: float) -> float | None:
    """How far ahead of ``now_s`` (this process's clock) the latest JSON line of the process
    ``name``'s log is stamped (its ``time`` is the process's wall clock); None before any."""
    stamps = []
    for line in (cluster.log_dir / f"{name}.log").read_text(errors="replace").splitlines():
        try:
            stamps.append(datetime.fromisoformat(json.loads(line)["time"]).timestamp())
        except (ValueError, KeyError, TypeError):
            continue
    return max(stamps) - now_s if stamps else None


def owner_of(cluster: Cluster, pid: int) -> str:
    """The cluster process name whose process tree contains ``pid``."""
    ancestors = {p.pid for p in psutil.Process(pid).parents()} | {pid}
    return next(name for name, proc in cluster.processes.items() if proc.pid in ancestors)


def step_records(client: redis.Redis, session_id: str) -> dict[str, dict[str, Any]]:
    """The session's step records as Redis holds them (leases included)."""
    raw = client.hgetall(KEYS.steps(session_id))
    return {key.decode(): json.loads(value) for key, value in raw.items()}


def worker_log_lines(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    """The JSON lines of the process ``name``'s log."""
    lines = []
    for line in (cluster.log_dir / f"{name}.log").read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return [line for line in lines if isinstance(line, dict)]


def workers_alive(cluster: Cluster) -> dict[str, bool]:
    """GET /api/workers?status=true: each worker's liveness as the API judges it."""
    response = requests.get(f"{cluster.api_url}/api/workers", params={"status": "true"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()
