"""The plan graph: flatten subtasks into one DAG, validate it, and answer questions about it.

Pure functions, no I/O. A parent step with subtasks becomes a node that depends on all of its
subtasks; each subtask depends on its parent's own dependencies plus its declared siblings, so the
subtasks start when the parent could have, run in parallel where they can, and the parent runs
last with their outputs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.errors import (
    CycleError,
    DuplicateStepError,
    LimitExceededError,
    UnknownDependencyError,
    UnroutableStepError,
)
from orchestrator.core.models import PlanStep
from orchestrator.settings import Settings


@dataclass(frozen=True)
class GraphNode:
    """One executable step of the flattened plan."""

    step: PlanStep
    depends_on: tuple[str, ...]
    parent_id: str | None = None
    children: tuple[str, ...] = field(default=())
    subtask_ids: tuple[str, ...] = field(default=())

    @property
    def id(self) -> str:
        return self.step.id


def _walk(steps: Iterable[PlanStep]) -> Iterable[PlanStep]:
    for step in steps:
        yield step
        yield from _walk(step.subtasks)


def _check_unique(steps: list[PlanStep]) -> None:
    counts = Counter(step.id for step in _walk(steps))
    duplicated = sorted(step_id for step_id, count in counts.items() if count > 1)
    if duplicated:
        raise DuplicateStepError(duplicated)


def _flatten(
    steps: list[PlanStep],
    inherited: tuple[str, ...],
    parent_id: str | None,
    out: dict[str, list[Any]],
) -> None:
    for step in steps:
        own = tuple(dict.fromkeys((*inherited, *step.depends_on)))
        sub_ids = tuple(sub.id for sub in step.subtasks)
        out[step.id] = [step, (*own, *sub_ids), parent_id]
        if step.subtasks:
            _flatten(step.subtasks, own, step.id, out)


def _check_dependencies(raw: Mapping[str, list[Any]]) -> None:
    missing: dict[str, list[str]] = {}
    for step_id, (step, _deps, _parent) in raw.items():
        unknown = [dep for dep in step.depends_on if dep not in raw]
        self_ref = [dep for dep in step.depends_on if dep == step_id]
        if unknown:
            missing[step_id] = unknown
        if self_ref:
            raise CycleError([step_id, step_id])
    if missing:
        raise UnknownDependencyError(missing)


def find_cycle(dependencies: Mapping[str, Iterable[str]]) -> list[str] | None:
    """Return one dependency cycle as a closed path of step ids, or None for a DAG."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in dependencies:
        if state.get(start):
            continue
        path: list[str] = []
        stack: list[tuple[str, Iterable[str]]] = [(start, iter(dependencies[start]))]
        state[start] = 1
        path.append(start)
        while stack:
            node, edges = stack[-1]
            advanced = False
            for dep in edges:
                if state.get(dep) == 1:
                    return [*path[path.index(dep) :], dep]
                if not state.get(dep):
                    state[dep] = 1
                    path.append(dep)
                    stack.append((dep, iter(dependencies.get(dep, ()))))
                    advanced = True
                    break
            if not advanced:
                state[node] = 2
                path.pop()
                stack.pop()
    return None


@dataclass(frozen=True)
class PlanGraph:
    """A validated, flattened plan: nodes in plan order with their dependents."""

    nodes: dict[str, GraphNode]

    @classmethod
    def build(cls, steps: list[PlanStep]) -> PlanGraph:
        """Flatten and validate. Raises a PlanError subclass naming the offending steps."""
        _check_unique(steps)
        raw: dict[str, list[Any]] = {}
        _flatten(steps, (), None, raw)
        _check_dependencies(raw)
        cycle = find_cycle({step_id: deps for step_id, (_s, deps, _p) in raw.items()})
        if cycle:
            raise CycleError(cycle)
        children: dict[str, list[str]] = {step_id: [] for step_id in raw}
        for step_id, (_step, deps, _parent) in raw.items():
            for dep in deps:
                children[dep].append(step_id)
        nodes = {
            step_id: GraphNode(
                step,
                tuple(deps),
                parent,
                tuple(children[step_id]),
                tuple(sub.id for sub in step.subtasks),
            )
            for step_id, (step, deps, parent) in raw.items()
        }
        return cls(nodes)

    @property
    def roots(self) -> list[str]:
        return [step_id for step_id, node in self.nodes.items() if not node.depends_on]

    def is_parallelizable(self) -> bool:
        """True when at least two steps could run at the same time."""
        depth: dict[str, int] = {}
        for step_id in self.topological_order():
            node = self.nodes[step_id]
            depth[step_id] = 1 + max((depth[dep] for dep in node.depends_on), default=0)
        return len(depth) > len(set(depth.values()))

    def depth(self, step_id: str) -> int:
        """How deep a step is nested: 1 for a top-level step, 2 for its subtasks, ..."""
        depth, parent = 1, self.nodes[step_id].parent_id
        while parent is not None:
            depth, parent = depth + 1, self.nodes[parent].parent_id
        return depth

    def deepest(self) -> tuple[str, int]:
        """The most deeply nested step and its depth."""
        return max(((s, self.depth(s)) for s in self.nodes), key=lambda item: item[1])

    def topological_order(self) -> list[str]:
        remaining = {step_id: len(node.depends_on) for step_id, node in self.nodes.items()}
        ready = [step_id for step_id, count in remaining.items() if count == 0]
        order: list[str] = []
        while ready:
            step_id = ready.pop(0)
            order.append(step_id)
            for child in self.nodes[step_id].children:
                remaining[child] -= 1
                if remaining[child] == 0:
                    ready.append(child)
        return order

    def check_routable(self, agents_by_capabilities: Iterable[tuple[frozenset[str], str]]) -> None:
        """Raise UnroutableStepError unless every step has an agent with all its capabilities.

        Args:
            agents_by_capabilities: (capability names, agent type) for every routable agent.
        """
        agents = list(agents_by_capabilities)
        unroutable: dict[str, list[str]] = {}
        for step_id, node in self.nodes.items():
            needed = set(node.step.required_capabilities)
            wanted_type = node.step.agent_type
            if not any(
                needed <= caps and (wanted_type is None or wanted_type == agent_type)
                for caps, agent_type in agents
            ):
                label = sorted(needed) + ([f"agentType={wanted_type}"] if wanted_type else [])
                unroutable[step_id] = label
        if unroutable:
            known = sorted({cap for caps, _type in agents for cap in caps})
            raise UnroutableStepError(unroutable, known)


def json_size(value: object) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON: how the limits measure documents."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def json_depth(value: object) -> int:
    """How deeply objects and arrays nest in ``value``: 0 for a scalar, 1 for ``{}``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item)
    return deepest


@dataclass(frozen=True)
class StepLimitProblem:
    """A step over one of the per-step limits: which step, where in the plan, what and how much.

    ``location`` is the path from the list of steps, e.g. ``steps.0.subtasks.2.parameters``."""

    step_id: str
    location: str
    what: str  # "subtasks" | "parameters bytes"
    actual: int
    limit: int


def step_limit_problem(
    steps: list[PlanStep], *, max_subtasks: int, max_parameters_bytes: int
) -> StepLimitProblem | None:
    """The first step (in plan order, depth first) with more subtasks than ``max_subtasks`` or
    ``parameters`` larger than ``max_parameters_bytes``; None when every step is within them."""
    stack = [(step, f"steps.{index}") for index, step in reversed(list(enumerate(steps)))]
    while stack:
        step, location = stack.pop()
        if len(step.subtasks) > max_subtasks:
            return StepLimitProblem(
                step.id, f"{location}.subtasks", "subtasks", len(step.subtasks), max_subtasks
            )
        size = json_size(step.parameters)
        if size > max_parameters_bytes:
            return StepLimitProblem(
                step.id, f"{location}.parameters", "parameters bytes", size, max_parameters_bytes
            )
        stack.extend(
            (sub, f"{location}.subtasks.{index}")
            for index, sub in reversed(list(enumerate(step.subtasks)))
        )
    return None


def limit_error(
    location: str, field: str, limit: int, actual: int, setting: str, **details: Any
) -> LimitExceededError:
    """A LimitExceededError whose message and details also name the request field."""
    error = LimitExceededError(f"{location}: {field}", limit, actual, setting)
    error.details.update({"location": location, **details})
    return error


def check_metadata(metadata: dict[str, Any], settings: Settings, location: str) -> None:
    """Hold a ``metadata`` object to MEOWSTIK_MAX_METADATA_BYTES and _DEPTH (a request's, or an
    agent's registered over the API). Raises LimitExceededError naming ``location``."""
    size = json_size(metadata)
    if size > settings.max_metadata_bytes:
        raise limit_error(
            location,
            "metadata bytes",
            settings.max_metadata_bytes,
            size,
            "MEOWSTIK_MAX_METADATA_BYTES",
        )
    depth = json_depth(metadata)
    if depth > settings.max_metadata_depth:
        raise limit_error(
            location,
            "metadata nesting depth",
            settings.max_metadata_depth,
            depth,
            "MEOWSTIK_MAX_METADATA_DEPTH",
        )
