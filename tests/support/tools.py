"""Tools for the integration tests, loaded by real workers via MEOWSTIK_TOOL_MODULES: one with a
side effect the test can count (not idempotent), one that blocks on a Redis list until the test
opens it (so a test can kill a worker while a tool runs, without sleeps)."""

from __future__ import annotations

import os

from orchestrator.core.errors import PermanentStepError
from orchestrator.core.tools import ToolContext, tool
from tests.support.agents import GATE_TIMEOUT_S, _client


@tool
def tally(context: ToolContext, counter: str) -> dict:
    """Count one more run of ``counter`` (a side effect: running twice counts twice).

    Args:
        counter: the counter's name.
    """
    runs = _client().incr(f"test:tally:{counter}")
    return {"counter": counter, "runs": runs}


@tool(idempotent=True)
def gated_lookup(context: ToolContext, gate: str) -> dict:
    """Wait until the test opens the gate, then answer (safe to run again).

    Args:
        gate: the gate's name.
    """
    client = _client()
    client.rpush(f"test:pids:{gate}", os.getpid())
    if client.blpop([f"test:gate:{gate}"], timeout=GATE_TIMEOUT_S) is None:
        raise PermanentStepError(f"gate {gate} was never opened")
    return {"gate": gate, "pid": os.getpid()}
