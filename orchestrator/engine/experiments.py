"""A/B experiments as a service (orchestrator/core/experiments.py says what they are): create,
list, stop and report; and, at submit, which variant a session gets and what it changes."""

from __future__ import annotations

from orchestrator.core.errors import (
    ExperimentChoiceError,
    ExperimentConflictError,
    ExperimentNotFoundError,
    UnknownPolicyError,
)
from orchestrator.core.experiments import (
    Experiment,
    ExperimentReport,
    ExperimentRequest,
    Variant,
    assign,
    report,
)
from orchestrator.core.logentry import iso_from_ms
from orchestrator.core.models import OrchestrateRequest
from orchestrator.engine.context import EngineContext


class Experiments:
    def __init__(self, context: EngineContext) -> None:
        self.context = context
        self.store = context.sessions.experiments

    def create(self, request: ExperimentRequest) -> Experiment:
        """Start an experiment. Raises UnknownPolicyError (422) for a variant's policy nobody
        defines, ExperimentConflictError (409) for a name in use or a second match-all one."""
        for variant in request.variants:
            if variant.policy is not None and variant.policy not in self.context.policies:
                raise UnknownPolicyError(variant.policy, self.context.policies.names())
        running = self.store.for_all() if request.match == "all" else None
        if running is not None and running.status == "running":
            raise ExperimentConflictError(
                f"experiment {running.name!r} already runs on every session (match all); stop "
                'it first, or create this one with match "named"',
                running=running.name,
            )
        now = self.context.now_ms()
        experiment = Experiment(**request.model_dump(), created_at=iso_from_ms(now) or "")
        if not self.store.create(experiment, now):
            raise ExperimentConflictError(
                f"an experiment named {request.name!r} exists; choose another name",
                experiment=request.name,
            )
        return experiment

    def get(self, name: str) -> Experiment:
        found = self.store.get(name)
        if found is None:
            raise ExperimentNotFoundError(name)
        return found

    def list(self) -> list[Experiment]:
        return [e for e in (self.store.get(n) for n in self.store.names()) if e is not None]

    def stop(self, name: str) -> Experiment:
        """No session joins it any more; its report stays."""
        experiment = self.get(name)
        if experiment.status == "running":
            now = iso_from_ms(self.context.now_ms())
            experiment = experiment.model_copy(update={"status": "stopped", "stopped_at": now})
            self.store.save(experiment)
        return experiment

    def report(self, name: str) -> ExperimentReport:
        experiment = self.get(name)
        outcomes, expired = self.store.outcomes(name)
        return report(experiment, outcomes, expired)

    def assignment(
        self, request: OrchestrateRequest, session_id: str
    ) -> tuple[OrchestrateRequest, Experiment | None, Variant | None]:
        """The request as the session's variant changes it, with the experiment and variant
        (None, None when it joins none). A named experiment that is unknown or stopped is a
        422 (ExperimentChoiceError); the match-all one applies to sessions that name none."""
        if request.experiment is not None:
            named = self.store.get(request.experiment)
            if named is None:
                raise ExperimentChoiceError(request.experiment, "does not exist")
            if named.status != "running":
                raise ExperimentChoiceError(request.experiment, "is stopped")
            experiment = named
        else:
            found = self.store.for_all()
            if found is None or found.status != "running":
                return request, None, None
            experiment = found
        variant = assign(experiment, session_id, request.user_id)
        changes = {
            name: getattr(variant, name)
            for name in ("policy", "planner", "template")
            if getattr(variant, name) is not None
        }
        if variant.agent_overrides:
            changes["agent_overrides"] = {
                **(request.agent_overrides or {}),
                **variant.agent_overrides,
            }
        return request.model_copy(update=changes), experiment, variant
