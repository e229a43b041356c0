"""The selection policies of this installation (orchestrator/core/policies.py): the built-ins
(``learned`` with its weights from settings, orchestrator/core/learned.py),
module-level SelectionPolicy instances in the modules MEOWSTIK_POLICY_MODULES names, and those
published under the ``meowstik.policies`` entry-point group. The API and every worker load the
same catalogue when they start; a policy named by MEOWSTIK_SELECTION_POLICY that none of them
defines stops the start."""

from __future__ import annotations

from orchestrator.core.errors import ConfigurationError
from orchestrator.core.learned import LearnedPolicy, LearnedWeights
from orchestrator.core.plugins import discover
from orchestrator.core.policies import PolicyCatalog, SelectionPolicy
from orchestrator.settings import Settings

ENTRY_POINT_GROUP = "meowstik.policies"


def load_policies(settings: Settings) -> PolicyCatalog:
    """The catalogue; ConfigurationError for a module that cannot be imported, a name defined
    twice, or a MEOWSTIK_SELECTION_POLICY nobody defines."""
    found = discover(
        SelectionPolicy,
        modules=settings.policy_module_names,
        setting="MEOWSTIK_POLICY_MODULES",
        group=ENTRY_POINT_GROUP,
        error=ConfigurationError,
    )
    weights = LearnedWeights(
        latency_weight=settings.learned_latency_weight,
        latency_scale_s=settings.learned_latency_scale_s,
        cost_weight=settings.learned_cost_weight,
        cost_scale_usd=settings.learned_cost_scale_usd,
        exploration=settings.learned_exploration,
        window=settings.learned_window,
    )
    catalog = PolicyCatalog([(LearnedPolicy(weights), "the built-in policies"), *found])
    try:
        catalog.get(settings.selection_policy)
    except ConfigurationError as exc:
        raise ConfigurationError(f"MEOWSTIK_SELECTION_POLICY: {exc.message}") from exc
    return catalog
