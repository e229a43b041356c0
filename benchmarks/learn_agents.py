"""The simulated fleet of the learned-policy benchmark (benchmarks/learn.py): three agents with
the same capability. ``sim-good`` answers in 40 ms; ``sim-slow`` in 200 ms (5x slower);
``sim-flaky`` in 40 ms but fails 30 % of its steps (permanently: the benchmark's cluster has no
retries and no fallback, so a failure fails the session, as a bad answer would)."""

from __future__ import annotations

import random
import time

from orchestrator.core.errors import PermanentStepError
from workers.agents.base import agent

GOOD_S, SLOW_S, FLAKY_FAILURES = 0.04, 0.2, 0.3


@agent(id="sim-flaky", name="Flaky", type="sim", capabilities=["sim_work"], max_load=2)
def flaky(step_input):
    time.sleep(GOOD_S)
    if random.random() < FLAKY_FAILURES:
        raise PermanentStepError("simulated failure (30 % of this agent's steps)")
    return "ok"


@agent(id="sim-good", name="Good", type="sim", capabilities=["sim_work"], max_load=2)
def good(step_input):
    time.sleep(GOOD_S)
    return "ok"


@agent(id="sim-slow", name="Slow", type="sim", capabilities=["sim_work"], max_load=2)
def slow(step_input):
    time.sleep(SLOW_S)
    return "ok"
