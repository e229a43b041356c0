"""/api/orchestrator/experiments: A/B experiments on the orchestrator's own strategies (selection
policy, planner, template), orchestrator/core/experiments.py. Creating and stopping one is for
admin tokens; anyone may read the reports."""

from __future__ import annotations

from flask import Blueprint, jsonify

from api import schemas
from api.body import json_body
from api.operations import BODY, BY_ID, LOCATION, STORE, Operation, ok, path_param
from api.routes import services
from orchestrator.core.experiments import Experiment, ExperimentReport, ExperimentRequest

blueprint = Blueprint("experiments", __name__, url_prefix="/api/orchestrator")


@blueprint.post("/experiments")
def create_experiment():
    """Start an experiment: {"name", "variants": [{"name", "weight", "policy"?, "planner"?,
    "template"?}], "assignBy": "session"|"user", "match": "named"|"all", "metrics": [...],
    "confidence": 0.95}. Sessions naming it (or all, with match "all") get a variant."""
    experiment = services().engine.experiments.create(ExperimentRequest.model_validate(json_body()))
    response = jsonify(experiment.model_dump(mode="json", by_alias=True))
    response.status_code = 201
    response.headers["Location"] = f"/api/orchestrator/experiments/{experiment.name}"
    return response


@blueprint.get("/experiments")
def list_experiments():
    found = services().engine.experiments.list()
    body = [e.model_dump(mode="json", by_alias=True) for e in found]
    return jsonify({"experiments": body, "count": len(body)})


@blueprint.get("/experiments/<name>")
def experiment_report(name: str):
    """Per variant: sessions, success rate with its interval, duration and cost (mean with an
    interval, p50, p95); per metric, each variant against the first, with the test named."""
    report = services().engine.experiments.report(name)
    return jsonify(report.model_dump(mode="json", by_alias=True))


@blueprint.post("/experiments/<name>/stop")
def stop_experiment(name: str):
    """No more sessions join it; the report stays."""
    experiment = services().engine.experiments.stop(name)
    return jsonify(experiment.model_dump(mode="json", by_alias=True))


NAME = path_param("name", "the experiment's name")

OPERATIONS = (
    Operation(
        "post",
        "/api/orchestrator/experiments",
        "experiments.create_experiment",
        "Start an A/B experiment on policies, planners or templates",
        "experiments",
        {201: ok(Experiment, "the experiment, running", headers=LOCATION)},
        body=ExperimentRequest,
        errors=(409, *BODY, *STORE),
    ),
    Operation(
        "get",
        "/api/orchestrator/experiments",
        "experiments.list_experiments",
        "Experiments, oldest first",
        "experiments",
        {200: ok(schemas.ExperimentList)},
        errors=STORE,
    ),
    Operation(
        "get",
        "/api/orchestrator/experiments/<name>",
        "experiments.experiment_report",
        "An experiment's report: per variant figures and verdicts",
        "experiments",
        {200: ok(ExperimentReport)},
        params=(NAME,),
        errors=(*BY_ID, *STORE),
    ),
    Operation(
        "post",
        "/api/orchestrator/experiments/<name>/stop",
        "experiments.stop_experiment",
        "Stop an experiment (its report stays)",
        "experiments",
        {200: ok(Experiment)},
        params=(NAME,),
        errors=(*BY_ID, *STORE),
    ),
)
