"""Give a step its model (``step_input.llm``) outside a worker: the binder a worker uses, over
an in-memory Redis for the step's record of calls."""

from __future__ import annotations

from typing import Any

import fakeredis

from orchestrator.core.models import AgentDefinition
from orchestrator.core.steps import StepInput
from orchestrator.settings import Settings
from orchestrator.store.keys import Keys
from orchestrator.store.turns import TurnJournal
from workers.model_binding import ModelBinder
from workers.tools.catalog import load_tools


def bind_model(
    definition: AgentDefinition,
    settings: Settings,
    step_input: StepInput,
    *,
    client: Any = None,
    sleep: Any = None,
    deltas: Any = None,
) -> StepInput:
    """``step_input`` with the model the worker would give ``definition``'s step."""
    binder = ModelBinder(
        settings,
        load_tools(settings),
        TurnJournal(client or fakeredis.FakeRedis(), Keys()),
        deltas=deltas,
        now_ms=lambda: 1_700_000_000_000,
        **({"sleep": sleep} if sleep is not None else {}),
    )
    bound, _ = binder.bind(definition, step_input)
    return bound
