"""Planning without running: plan previews and the workflow templates."""

from __future__ import annotations

from flask import Blueprint, jsonify

from api import schemas
from api.body import json_body
from api.operations import BODY, STORE, Operation, ok, path_param
from api.routes import services
from orchestrator.core.models import OrchestrateRequest, PlanPreview

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


OPERATIONS = (
    Operation(
        "post",
        "/api/orchestrator/plans",
        "plans.preview_plan",
        "Plan and check a request without running it",
        "plans",
        {200: ok(PlanPreview)},
        body=OrchestrateRequest,
        errors=(*BODY, *STORE),
    ),
    Operation(
        "get",
        "/api/orchestrator/templates",
        "plans.list_templates",
        "The workflow templates, and the files that failed to load",
        "plans",
        {200: ok(schemas.TemplateList)},
    ),
    Operation(
        "get",
        "/api/orchestrator/templates/<name>",
        "plans.get_template",
        "One workflow template (422 unknown_template for an unknown name)",
        "plans",
        {200: ok(schemas.TemplateSummary)},
        params=(path_param("name", "the template's name"),),
        errors=(404, 405, 422),
    ),
)
