"""A session lock whose holder process dies expires with its TTL, and the next owner proceeds."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from orchestrator.store.keys import Keys
from orchestrator.store.state import StateManager

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
KEYS = Keys(prefix="test")
SID, LOCK = "s-locks", "deploy"
HOLDER_TTL_S = 2
READY_DEADLINE_S = 30.0

HOLDER = """
import sys, threading
import redis
from orchestrator.store.keys import Keys
from orchestrator.store.state import StateManager

state = StateManager(redis.Redis.from_url(sys.argv[1]), Keys(prefix=sys.argv[2]))
lock = state.lock(sys.argv[3], sys.argv[4], ttl_s=float(sys.argv[5]), blocking_timeout_s=0)
if not lock.acquire():
    sys.exit("the lock was already held")
print("locked", flush=True)
threading.Event().wait()
"""


def first_line(process: subprocess.Popen, timeout_s: float) -> str:
    """The first line the process prints, read on a thread so the wait has a deadline."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout_s).strip()
    except queue.Empty:
        pytest.fail(f"the lock holder printed nothing within {timeout_s} s")


def test_a_lock_whose_holder_was_killed_expires_and_the_next_holder_proceeds(
    redis_server, real_redis, tmp_path
):
    # Given a separate process holding the lock with a 2 s TTL
    stderr = (tmp_path / "holder.err").open("w")
    args = [redis_server.url, KEYS.prefix, SID, LOCK, str(HOLDER_TTL_S)]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        line = first_line(holder, READY_DEADLINE_S)
        assert line == "locked", (tmp_path / "holder.err").read_text()
        dead_token = real_redis.get(KEYS.lock(SID, LOCK))

        # When the holder is killed without releasing it
        holder.kill()
        holder.wait(timeout=10)

        # Then the lock still stands until its TTL runs out ...
        lock = StateManager(real_redis, KEYS).lock(SID, LOCK, ttl_s=5, blocking_timeout_s=10)
        assert dead_token is not None
        assert not lock.acquire(blocking=False), "a dead holder's lock freed before its TTL"
        assert real_redis.get(KEYS.lock(SID, LOCK)) == dead_token

        # ... and then the next owner gets it, within its blocking timeout
        assert lock.acquire(), "the dead holder's lock did not expire within 10 s"
        assert real_redis.get(KEYS.lock(SID, LOCK)) == lock.local.token != dead_token
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
        stderr.close()
