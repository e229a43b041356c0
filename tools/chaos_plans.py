"""The sessions `make chaos` submits: plans of mixed shapes (chains, fan-outs with a fan-in,
diamonds, lattices, random DAGs) whose steps go half to the slow HTTP agent and half to the
Python agents, with durations drawn from a seeded random generator."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from tools.chaos_agents import HTTP_CAPABILITY, PYTHON_CAPABILITY

HTTP_DELAY_S = (0.3, 2.5)  # the slow agent
PYTHON_WORK_S = (0.02, 0.8)  # the fast ones
LOCK_SHARE = 0.25  # of the Python steps hold a session lock while they work
MAX_ATTEMPTS = 10  # retryable errors a fault may cause (a lost connection) must not fail a step


def chain(rng: random.Random) -> list[list[str]]:
    """a -> b -> c ...: each step's dependencies, in order."""
    length = rng.randint(3, 7)
    return [[] if i == 0 else [f"s{i - 1}"] for i in range(length)]


def fan_out(rng: random.Random) -> list[list[str]]:
    """One root, N branches, one fan-in step."""
    width = rng.randint(3, 7)
    branches = [["s0"] for _ in range(width)]
    return [[], *branches, [f"s{i + 1}" for i in range(width)]]


def diamond(rng: random.Random) -> list[list[str]]:
    """A -> (B, C) -> D, repeated 1-3 times in a row."""
    deps: list[list[str]] = [[]]
    for _ in range(rng.randint(1, 3)):
        top = f"s{len(deps) - 1}"
        deps += [[top], [top]]
        deps.append([f"s{len(deps) - 2}", f"s{len(deps) - 1}"])
    return deps


def lattice(rng: random.Random) -> list[list[str]]:
    """A grid where (i, j) depends on (i-1, j) and (i, j-1)."""
    rows, columns = rng.randint(2, 3), rng.randint(2, 4)
    deps = []
    for i in range(rows):
        for j in range(columns):
            deps.append(
                ([f"s{(i - 1) * columns + j}"] if i else [])
                + ([f"s{i * columns + j - 1}"] if j else [])
            )
    return deps


def random_dag(rng: random.Random) -> list[list[str]]:
    """Each step depends on up to 3 earlier ones, chosen at random."""
    size = rng.randint(4, 9)
    return [
        sorted({f"s{rng.randrange(i)}" for _ in range(rng.randint(0, min(i, 3)))}) if i else []
        for i in range(size)
    ]


SHAPES: dict[str, Callable[[random.Random], list[list[str]]]] = {
    "chain": chain,
    "fan-out": fan_out,
    "diamond": diamond,
    "lattice": lattice,
    "random-dag": random_dag,
}


def plan_step(rng: random.Random, index: int, depends_on: list[str], beacons: str) -> dict:
    if rng.random() < 0.5:
        capability = HTTP_CAPABILITY
        parameters: dict[str, Any] = {"delayS": round(rng.uniform(*HTTP_DELAY_S), 3)}
    else:
        capability = PYTHON_CAPABILITY
        parameters = {"workS": round(rng.uniform(*PYTHON_WORK_S), 3), "beacons": beacons}
        if rng.random() < LOCK_SHARE:
            parameters["lock"] = "tally"
    return {
        "id": f"s{index}",
        "title": f"{capability} step {index}",
        "requiredCapabilities": [capability],
        "dependsOn": depends_on,
        "parameters": parameters,
    }


def session_body(rng: random.Random, number: int, beacons: str) -> tuple[str, dict[str, Any]]:
    """(shape name, POST /orchestrate body) of the chaos session ``number``."""
    shape = rng.choice(sorted(SHAPES))
    steps = [plan_step(rng, i, deps, beacons) for i, deps in enumerate(SHAPES[shape](rng))]
    return shape, {
        "goal": f"chaos session {number}: {shape} of {len(steps)} steps",
        "userId": "chaos",
        "plan": {"steps": steps},
        "maxAttempts": MAX_ATTEMPTS,
        "metadata": {"chaosShape": shape, "chaosNumber": number},
    }
