"""Planning without running: plan previews and the workflow templates."""

from __future__ import annotations

from flask import Blueprint, jsonify

from api.body import json_body
from api.routes.orchestrator import services
from orchestrator.core.models import OrchestrateRequest

blueprint = Blueprint("plans", __name__, url_prefix="/api/orchestrator")


@blueprint.post("/plans")
def preview_plan():
    """The plan a request would run (same body as /orchestrate), checked against the registry,
    with its critical path and estimated duration. Nothing is stored or started."""
    request_model = OrchestrateRequest.model_validate(json_body())
    return jsonify(services().engine.preview(request_model).to_json_dict())


@blueprint.get("/templates")
def list_templates():
    """Every usable workflow template, and the template files that could not be loaded."""
    library = services().engine.planning.templates
    templates = [
        library.templates[name].summary(library.sources[name]) for name in sorted(library.templates)
    ]
    return jsonify({"templates": templates, "count": len(templates), "problems": library.problems})


@blueprint.get("/templates/<name>")
def get_template(name: str):
    library = services().engine.planning.templates
    return jsonify(library.get(name).summary(library.sources[name]))
