"""An agent for tests that make Redis refuse writes (tests/integration/test_redis_memory.py):
it blocks on a file, not on Redis, because while Redis is out of memory or refusing writes
(MISCONF) a gate kept in Redis could not be opened, and a run counter kept there could not be
counted.

Each run creates ``<gate dir>/run-<attempt>-<pid>`` when it starts, then waits until
``<gate dir>/open`` exists. Loaded by real workers via MEOWSTIK_AGENT_MODULES.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from orchestrator.core.errors import PermanentStepError
from orchestrator.core.steps import StepInput
from workers.agents.base import agent

GATE_TIMEOUT_S = 120.0
POLL_S = 0.02
OPEN_FILE = "open"


def runs(gate: Path) -> list[Path]:
    """The runs that started, one file each."""
    return sorted(gate.glob("run-*"))


@agent(
    id="filegate-001",
    name="File gate",
    type="tester",
    capabilities=["file_gated_work"],
    max_load=2,
)
def file_gate(step_input: StepInput) -> dict:
    """Waits until the test creates ``open`` in the directory parameters['gate'] names."""
    gate = Path(step_input.step.parameters["gate"])
    (gate / f"run-{step_input.attempt}-{os.getpid()}").touch()
    deadline = time.monotonic() + GATE_TIMEOUT_S
    while not (gate / OPEN_FILE).exists():
        if time.monotonic() > deadline:
            raise PermanentStepError(f"gate {gate} was never opened")
        time.sleep(POLL_S)
    return {"stepId": step_input.step_id, "attempt": step_input.attempt, "pid": os.getpid()}
