"""Choosing a planner for a request and checking what it made.

    request.plan given       -> explicit (the client's own steps; the plan of a preview or a
                                snapshot is accepted as is: its goal, parallelizable, planner
                                and template are ignored, the log quotes planner and template)
    planner / template named -> that planner (template: the named one, else the best match)
    neither                  -> MEOWSTIK_PLANNER (default auto: a template matching the goal,
                                else the LLM when MEOWSTIK_LLM_BASE_URL is set, else the rules)

Every plan, whoever made it, passes ``check_plan``: the graph (duplicate ids, unknown
dependencies, cycles), the step and depth limits, and routability against the registered agents.
An LLM plan that stays invalid after its repairs, or an LLM that cannot be reached, hands over
to the rule planner; the notes returned with the plan say so and go into the session's log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.errors import (
    LimitExceededError,
    PlanDepthError,
    PlannerChoiceError,
    TemplateError,
)
from orchestrator.core.graph import PlanGraph
from orchestrator.core.models import (
    AgentDefinition,
    ExplicitPlan,
    OrchestrateRequest,
    PlannerName,
    PlanStep,
    TaskPlan,
)
from orchestrator.planning.llm import ChatModel, plan_with_llm
from orchestrator.planning.rules import plan_goal
from orchestrator.planning.templates import TemplateLibrary, instantiate
from orchestrator.settings import Settings


@dataclass(frozen=True)
class PlanNote:
    """Something the session's log should say about how its plan was made."""

    level: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanOutcome:
    plan: TaskPlan
    graph: PlanGraph
    notes: tuple[PlanNote, ...] = ()


def check_plan(
    steps: list[PlanStep], agents: Sequence[AgentDefinition], settings: Settings
) -> PlanGraph:
    """Build the graph and hold it to the limits and the registry.

    Raises:
        PlanError: duplicate ids, unknown dependencies, a cycle, too deep, or unroutable (422).
        LimitExceededError: more steps than MEOWSTIK_MAX_PLAN_STEPS (422).
    """
    graph = PlanGraph.build(steps)
    if len(graph.nodes) > settings.max_plan_steps:
        raise LimitExceededError(
            "plan steps", settings.max_plan_steps, len(graph.nodes), "MEOWSTIK_MAX_PLAN_STEPS"
        )
    deepest, depth = graph.deepest()
    if depth > settings.max_plan_depth:
        raise PlanDepthError(deepest, depth, settings.max_plan_depth)
    graph.check_routable((a.capability_names, a.type) for a in agents)
    return graph


def explicit_plan_notes(plan: ExplicitPlan) -> tuple[PlanNote, ...]:
    """What the log should say about a client's plan that names who made it (the plan of a
    preview or a snapshot sent back). Quoted, not recorded: the steps may have been edited, so
    the session's plan stays planner "explicit" without a template."""
    if plan.planner in (None, PlannerName.EXPLICIT) and plan.template is None:
        return ()
    planner = plan.planner.value if plan.planner else None
    said = ", ".join(
        f"{what} {name!r}"
        for what, name in (("planner", planner), ("template", plan.template))
        if name
    )
    data = {"planner": planner, "template": plan.template}
    return (PlanNote("info", f"Plan given by the client; it says it was made by {said}", data),)


class Planning:
    """Turns requests into checked plans. Build once per process (templates are loaded then)."""

    def __init__(
        self, settings: Settings, templates: TemplateLibrary, chat: ChatModel | None = None
    ) -> None:
        self.settings = settings
        self.templates = templates
        self.chat = chat

    def choose(self, request: OrchestrateRequest) -> PlannerName:
        """The planner that will make this request's plan (before any LLM fallback).

        Raises:
            PlannerChoiceError: the request's plan, planner and template contradict each other,
                or it asks for the LLM planner with no LLM configured.
        """
        if request.plan is not None:
            if request.planner not in (None, PlannerName.EXPLICIT) or request.template:
                raise PlannerChoiceError(
                    "a request with its own plan cannot also ask for "
                    + (f"planner {request.planner.value!r}" if request.planner else "")
                    + (" and " if request.planner and request.template else "")
                    + (f"template {request.template!r}" if request.template else "")
                    + "; send either plan or planner/template",
                    planner=request.planner,
                    template=request.template,
                )
            return PlannerName.EXPLICIT
        named = request.planner
        if named is None:
            named = PlannerName.TEMPLATE if request.template else PlannerName(self.settings.planner)
        if named == PlannerName.EXPLICIT:
            raise PlannerChoiceError(
                'planner "explicit" needs a plan: send {"plan": {"steps": [...]}}', planner=named
            )
        if request.template and named not in (PlannerName.TEMPLATE, PlannerName.AUTO):
            raise PlannerChoiceError(
                f"template {request.template!r} cannot be used with planner {named.value!r}; "
                'drop "planner" or set it to "template"',
                planner=named,
                template=request.template,
            )
        if named == PlannerName.AUTO:
            if request.template or self.templates.match(request.goal):
                return PlannerName.TEMPLATE
            return PlannerName.LLM if self.chat is not None else PlannerName.RULE
        if named == PlannerName.LLM and self.chat is None:
            raise PlannerChoiceError(
                'planner "llm" needs an LLM: set MEOWSTIK_LLM_BASE_URL (and MEOWSTIK_LLM_MODEL) '
                'for the API, or use planner "rule" or "template"',
                planner=named,
                setting="MEOWSTIK_LLM_BASE_URL",
            )
        return named

    def plan(self, request: OrchestrateRequest, agents: Sequence[AgentDefinition]) -> PlanOutcome:
        """Make and check the request's plan.

        Raises:
            PlannerChoiceError, TemplateError, TemplateParameterError, PlanError,
            LimitExceededError: all 422, naming what to change.
        """
        chosen = self.choose(request)
        if chosen == PlannerName.EXPLICIT:
            assert request.plan is not None
            notes = explicit_plan_notes(request.plan)
            return self._outcome(request, request.plan.steps, agents, chosen, None, notes)
        if chosen == PlannerName.TEMPLATE:
            return self._from_template(request, agents)
        if chosen == PlannerName.LLM:
            return self._from_llm(request, agents)
        return self._from_rules(request, agents, ())

    def _outcome(
        self,
        request: OrchestrateRequest,
        steps: list[PlanStep],
        agents: Sequence[AgentDefinition],
        planner: PlannerName,
        template: str | None,
        notes: tuple[PlanNote, ...],
    ) -> PlanOutcome:
        graph = check_plan(steps, agents, self.settings)
        plan = TaskPlan(
            goal=request.goal,
            steps=steps,
            parallelizable=graph.is_parallelizable(),
            planner=planner,
            template=template,
        )
        return PlanOutcome(plan, graph, notes)

    def _from_rules(
        self,
        request: OrchestrateRequest,
        agents: Sequence[AgentDefinition],
        notes: tuple[PlanNote, ...],
    ) -> PlanOutcome:
        steps = plan_goal(request.goal, request.initial_context).steps
        return self._outcome(request, steps, agents, PlannerName.RULE, None, notes)

    def _from_template(
        self, request: OrchestrateRequest, agents: Sequence[AgentDefinition]
    ) -> PlanOutcome:
        if request.template:
            template, groups = self.templates.get(request.template), {}
            matched = self.templates.match(request.goal)
            if matched and matched.template.name == template.name:
                groups = matched.groups
        else:
            matched = self.templates.match(request.goal)
            if matched is None:
                raise TemplateError(
                    "",
                    f"no workflow template matches the goal {request.goal[:80]!r}; name one with "
                    f'"template" (known: {", ".join(sorted(self.templates.templates))}) or use '
                    'planner "rule" or "llm"',
                    code="no_matching_template",
                    goal=request.goal[:200],
                    templates=sorted(self.templates.templates),
                )
            template, groups = matched.template, matched.groups
        steps = instantiate(template, request.goal, request.initial_context, groups)
        note = PlanNote(
            "info",
            f"Plan made from template {template.name}",
            {"template": template.name, "captured": groups},
        )
        return self._outcome(request, steps, agents, PlannerName.TEMPLATE, template.name, (note,))

    def _from_llm(
        self, request: OrchestrateRequest, agents: Sequence[AgentDefinition]
    ) -> PlanOutcome:
        assert self.chat is not None
        result = plan_with_llm(
            self.chat,
            request.goal,
            request.initial_context,
            agents,
            check=lambda steps: check_plan(steps, agents, self.settings),
            max_attempts=self.settings.planner_max_attempts,
            max_steps=self.settings.max_plan_steps,
        )
        notes = [
            PlanNote(
                "warn",
                "LLM plan rejected",
                {
                    "attempt": number,
                    "maxAttempts": self.settings.planner_max_attempts,
                    "errors": attempt.errors,
                    "replyStart": attempt.reply_start,
                },
            )
            for number, attempt in enumerate(result.attempts, start=1)
        ]
        if result.steps is not None:
            notes.append(
                PlanNote(
                    "info",
                    "Plan made by the LLM planner",
                    {"model": self.chat.model, "attempts": result.tries},
                )
            )
            return self._outcome(request, result.steps, agents, PlannerName.LLM, None, tuple(notes))
        reason = result.unavailable or (
            f"no valid plan in {len(result.attempts)} attempt(s); last errors: "
            + "; ".join(result.attempts[-1].errors[:3])
        )
        notes.append(
            PlanNote(
                "warn",
                "LLM planner failed; the rule planner made the plan",
                {"model": self.chat.model, "attempts": len(result.attempts), "reason": reason},
            )
        )
        return self._from_rules(request, agents, tuple(notes))
