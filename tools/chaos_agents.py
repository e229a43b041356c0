"""The agents a `make chaos` cluster hosts (loaded by its workers with MEOWSTIK_AGENT_MODULES),
and the output every chaos step answers with, Python or HTTP alike.

Two Python agents with one capability, each hosted by its own worker, so a step that one
worker loses can be taken over by the other. A step's ``parameters`` say what to do: ``workS``
(how long the work takes), ``lock`` (hold that session lock while working, so the locks that
dead holders leave behind are checked too) and ``beacons``: a directory where the running
process leaves ``<pid>.json`` naming the step and attempt it runs, removed when the work ends.
The chaos driver reads the beacons to aim a fault at a process that is running a step.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from orchestrator.core.steps import StepInput, StepResult
from workers.agents.base import agent

PYTHON_CAPABILITY = "chaos_py"
HTTP_CAPABILITY = "chaos_http"
PYTHON_AGENTS = ("chaos-py-a", "chaos-py-b")
HTTP_AGENT = "chaos-http-001"
PYTHON_MAX_LOAD = 2
# Longer than any freeze or partition the driver makes (lease + at most 3 s), so a lock is
# lost only by a holder that died; short enough that the checker's settle time outlasts it.
LOCK_TTL_S = 8.0
LOCK_WAIT_S = 60.0


def chaos_output(
    session_id: str, step_id: str, agent_id: str, attempt: int, dependencies: dict[str, Any]
) -> dict[str, Any]:
    """What a chaos step answers: who ran which attempt, and which dependencies' outputs it saw
    (the checker compares them with the plan)."""
    return {
        "chaos": True,
        "sessionId": session_id,
        "stepId": step_id,
        "agentId": agent_id,
        "attempt": attempt,
        "pid": os.getpid(),
        "dependencies": sorted(dependencies),
    }


@contextlib.contextmanager
def beacon(directory: str | None, document: dict[str, Any]):
    """Leave ``<directory>/<pid>.json`` while the block runs (nothing without a directory)."""
    if not directory:
        yield
        return
    path = Path(directory) / f"{os.getpid()}.json"
    path.write_text(json.dumps(document))
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _work(step_input: StepInput) -> StepResult:
    params = step_input.step.parameters
    running = {
        "sessionId": step_input.session_id,
        "stepId": step_input.step_id,
        "attempt": step_input.attempt,
        "agentId": step_input.agent_id,
    }
    with beacon(params.get("beacons"), running):
        lock_name = params.get("lock")
        held = (
            step_input.state.lock(lock_name, ttl_s=LOCK_TTL_S, wait_s=LOCK_WAIT_S)
            if lock_name and step_input.state is not None
            else contextlib.nullcontext()
        )
        with held:
            time.sleep(float(params.get("workS", 0.05)))  # the work itself
    output = chaos_output(
        step_input.session_id,
        step_input.step_id,
        step_input.agent_id,
        step_input.attempt,
        step_input.dependencies,
    )
    return StepResult(output, {f"done_{step_input.step_id}": step_input.attempt})


chaos_py_a = agent(
    id=PYTHON_AGENTS[0],
    name="Chaos Python A",
    type="chaos",
    capabilities=[PYTHON_CAPABILITY],
    max_load=PYTHON_MAX_LOAD,
)(_work)
chaos_py_b = agent(
    id=PYTHON_AGENTS[1],
    name="Chaos Python B",
    type="chaos",
    capabilities=[PYTHON_CAPABILITY],
    max_load=PYTHON_MAX_LOAD,
)(_work)
