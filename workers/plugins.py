"""The plugin finder, where the workers' catalogues have always imported it from (it lives in
orchestrator/core/plugins.py, which the engine's policy catalogue uses too)."""

from orchestrator.core.plugins import discover, objects_in

__all__ = ["discover", "objects_in"]
