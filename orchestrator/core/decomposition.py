"""Dynamic decomposition: a running step returns a sub-plan (``StepResult.subtasks``), which is
checked here and scheduled under it; the step runs again once its new subtasks completed.

Pure: no I/O. The caller reads the parent's record and its ancestors' and stores the result.
A sub-plan's steps may depend only on each other; each also receives what its parent received
(the parent's dependencies, all completed). Its ids are scoped by the parent: ``<parent>.<id>``
for the first sub-plan, ``<parent>.<n>.<id>`` for the n-th.

Guards against runaway re-planning (FIELD-NOTES: delegation loops), each failing the step with
a message that says what to change:
- depth: nesting beyond MEOWSTIK_MAX_PLAN_DEPTH;
- repeats: a sub-plan equal (same fingerprint) to one the step or any ancestor returned before;
- rounds: more than MEOWSTIK_MAX_DECOMPOSITIONS sub-plans from one step;
- size: more than MEOWSTIK_MAX_SUBPLAN_STEPS steps at once, or MEOWSTIK_MAX_PLAN_STEPS in all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from orchestrator.core.errors import PlanError, ReplanLoopError, SubPlanError
from orchestrator.core.graph import PlanGraph
from orchestrator.core.ids import capability_queue
from orchestrator.core.models import AgentDefinition, PlanStep
from orchestrator.core.records import NewSubplan, NewSubplanStep
from orchestrator.settings import Settings

MAX_STEP_ID_CHARS = 128  # models.STEP_ID_PATTERN
_COMPACT = (",", ":")


@dataclass(frozen=True)
class ParentView:
    """What the checks need to know about the decomposing step and the session."""

    step_id: str
    record: Mapping[str, Any]  # runtime record, with "dependsOn"
    ancestors: Sequence[tuple[str, Mapping[str, Any]]]  # nearest first
    session_steps: int


def parse_subtasks(step_id: str, raw: Iterable[Any]) -> list[PlanStep]:
    """PlanSteps from what an agent returned (PlanStep objects or JSON documents)."""
    steps: list[PlanStep] = []
    for index, item in enumerate(raw):
        if isinstance(item, PlanStep):
            steps.append(item)
            continue
        try:
            steps.append(PlanStep.model_validate(item))
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(part) for part in (index, *first["loc"]))
            raise SubPlanError(
                f"step {step_id!r} returned an invalid sub-plan: subtask {where}: "
                f"{first['msg']}. Return plan steps with id, title and requiredCapabilities.",
                details={"stepId": step_id, "location": where},
            ) from exc
    return steps


def fingerprint(steps: Sequence[PlanStep]) -> str:
    """A short digest of a sub-plan's content: equal sub-plans have equal fingerprints."""
    documents = [step.model_dump(mode="json", by_alias=True) for step in steps]
    canonical = json.dumps(documents, sort_keys=True, separators=_COMPACT)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _check_repeats(parent: ParentView, digest: str, settings: Settings) -> None:
    step_id = parent.step_id
    earlier = list(parent.record.get("subplans") or [])
    if digest in earlier:
        raise ReplanLoopError(
            f"step {step_id!r} returned the same sub-plan again (sub-plan {len(earlier) + 1}, "
            f"fingerprint {digest}); re-planning would loop forever. Once its subtasks are done "
            "(step_input.subtask_outputs), return a final output instead.",
            details={"stepId": step_id, "fingerprint": digest, "repeats": step_id},
        )
    for ancestor_id, record in parent.ancestors:
        if digest in (record.get("subplans") or []):
            raise ReplanLoopError(
                f"step {step_id!r} returned the same sub-plan as its ancestor {ancestor_id!r} "
                f"(fingerprint {digest}); the decomposition would recurse forever. Give the "
                "subtasks smaller work than their parent's.",
                details={"stepId": step_id, "fingerprint": digest, "repeats": ancestor_id},
            )
    if len(earlier) >= settings.max_decompositions:
        raise ReplanLoopError(
            f"step {step_id!r} already returned {len(earlier)} sub-plans, the limit "
            "(MEOWSTIK_MAX_DECOMPOSITIONS); return a final output from its subtasks' outputs.",
            details={"stepId": step_id, "subplans": len(earlier)},
        )


def _check_size_and_depth(parent: ParentView, graph: PlanGraph, settings: Settings) -> None:
    step_id, added = parent.step_id, len(graph.nodes)
    if added > settings.max_subplan_steps:
        raise SubPlanError(
            f"step {step_id!r} returned a sub-plan of {added} steps, over the limit of "
            f"{settings.max_subplan_steps} (MEOWSTIK_MAX_SUBPLAN_STEPS); split the work.",
            details={"stepId": step_id, "steps": added, "limit": settings.max_subplan_steps},
        )
    if parent.session_steps + added > settings.max_plan_steps:
        raise SubPlanError(
            f"step {step_id!r}'s sub-plan would bring the session to "
            f"{parent.session_steps + added} steps, over MEOWSTIK_MAX_PLAN_STEPS "
            f"({settings.max_plan_steps}).",
            details={"stepId": step_id, "limit": settings.max_plan_steps},
        )
    deepest, local_depth = graph.deepest()
    depth = len(parent.ancestors) + 1 + local_depth
    if depth > settings.max_plan_depth:
        raise SubPlanError(
            f"step {step_id!r}'s sub-plan would nest step {deepest!r} {depth} levels deep, "
            f"over MEOWSTIK_MAX_PLAN_DEPTH ({settings.max_plan_depth}); flatten the sub-plan.",
            details={"stepId": step_id, "depth": depth, "limit": settings.max_plan_depth},
        )


def build_subplan(
    parent: ParentView,
    steps: list[PlanStep],
    agents: Sequence[AgentDefinition],
    settings: Settings,
) -> NewSubplan:
    """Check a sub-plan and give its steps session-wide ids and dependencies.

    Raises:
        SubPlanError: invalid, unroutable, too big or too deep. ReplanLoopError: a repeat.
    """
    step_id = parent.step_id
    if not steps:
        raise SubPlanError(f"step {step_id!r} returned an empty sub-plan", details={})
    try:
        graph = PlanGraph.build(steps)
        graph.check_routable((a.capability_names, a.type) for a in agents)
    except PlanError as exc:
        raise SubPlanError(
            f"step {step_id!r} returned an invalid sub-plan: {exc.message}",
            details={"stepId": step_id, **exc.details},
        ) from exc
    digest = fingerprint(steps)
    _check_repeats(parent, digest, settings)
    _check_size_and_depth(parent, graph, settings)
    rounds = len(parent.record.get("subplans") or [])
    prefix = f"{step_id}." if rounds == 0 else f"{step_id}.{rounds + 1}."
    ids = {local: prefix + local for local in graph.nodes}
    too_long = [full for full in ids.values() if len(full) > MAX_STEP_ID_CHARS]
    if too_long:
        raise SubPlanError(
            f"step {step_id!r}'s sub-plan makes step ids over {MAX_STEP_ID_CHARS} characters "
            f"({too_long[0][:40]}…); use shorter ids.",
            details={"stepId": step_id},
        )
    inherited = tuple(parent.record.get("dependsOn") or ())
    new_steps = tuple(_new_step(node_id, graph, ids, inherited, step_id) for node_id in graph.nodes)
    top = tuple(ids[s.id] for s in steps)
    document = {
        "parentId": step_id,
        "round": rounds + 1,
        "fingerprint": digest,
        "steps": [_renamed(s, ids).model_dump(mode="json", by_alias=True) for s in steps],
    }
    return NewSubplan(digest, top, new_steps, json.dumps(document, separators=_COMPACT))


def _renamed(step: PlanStep, ids: Mapping[str, str]) -> PlanStep:
    """The step with session-wide ids, its own and its dependencies' and its subtasks'."""
    return step.model_copy(
        update={
            "id": ids[step.id],
            "depends_on": [ids[d] for d in step.depends_on],
            "subtasks": [_renamed(sub, ids) for sub in step.subtasks],
        }
    )


def _new_step(
    node_id: str,
    graph: PlanGraph,
    ids: Mapping[str, str],
    inherited: tuple[str, ...],
    parent_id: str,
) -> NewSubplanStep:
    node = graph.nodes[node_id]
    stored = _renamed(node.step, ids).model_copy(update={"subtasks": []})
    children = tuple(ids[c] for c in node.children)
    if node.parent_id is None:
        children += (parent_id,)  # the decomposing step waits for its top-level subtasks
    return NewSubplanStep(
        step_id=ids[node_id],
        step_json=stored.model_dump_json(by_alias=True),
        depends_on=(*inherited, *(ids[d] for d in node.depends_on)),
        children=children,
        remaining=len(node.depends_on),
        parent_id=ids[node.parent_id] if node.parent_id else parent_id,
        title=node.step.title,
        queue=capability_queue(node.step.required_capabilities[0]),
        required_capabilities=tuple(node.step.required_capabilities),
        agent_type=node.step.agent_type,
        subtask_ids=tuple(ids[s] for s in node.subtask_ids),
    )
