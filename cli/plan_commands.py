"""`meowstik plan` (preview a goal's plan without running it) and `meowstik templates`."""

from __future__ import annotations

import argparse
import json
from functools import partial
from typing import Any

from cli.api_client import ApiClient
from cli.client_commands import add_planning_arguments, request_body, run
from cli.rendering import format_duration, plan_tree, render_table


def add_parsers(commands: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    plan = commands.add_parser(
        "plan", help="show the plan a goal would get, its critical path and estimated duration"
    )
    plan.add_argument("goal", help="what the session would achieve")
    plan.add_argument("--context", help="initialContext, a JSON object")
    plan.add_argument("--user", help="userId (as submit would send it)")
    add_planning_arguments(plan)
    plan.add_argument("--json", action="store_true", help="print the preview as JSON")
    plan.set_defaults(handler=partial(run, action=_plan))

    templates = commands.add_parser("templates", help="list the workflow templates")
    templates.add_argument("--json", action="store_true", help="print them as JSON")
    templates.set_defaults(handler=partial(run, action=_templates))
    return [plan, templates]


def _plan(client: ApiClient, args: argparse.Namespace) -> int:
    preview = client.preview(request_body(args))
    print(json.dumps(preview, indent=2) if args.json else "\n".join(render_preview(preview)))
    return 0


def _templates(client: ApiClient, args: argparse.Namespace) -> int:
    listing = client.templates()
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for template in listing["templates"]:
        parameters = ", ".join(
            name + ("" if spec["required"] else f"={describe_default(spec['default'])}")
            for name, spec in template["parameters"].items()
        )
        print(
            f"{template['name']}: {template['title']}" + (f" ({parameters})" if parameters else "")
        )
    for problem in listing.get("problems", []):
        print(f"not loaded: {problem['message']}")
    return 0


def describe_default(value: Any) -> str:
    """A parameter's default as the listing shows it: placeholders said in words."""
    if not isinstance(value, str):
        return json.dumps(value)
    return value.replace("{{subject}}", "<the goal's subject>").replace("{{goal}}", "<the goal>")


def render_preview(preview: dict[str, Any]) -> list[str]:
    """A headline (planner, steps, estimate, critical path), then the step tree with estimates."""
    plan = preview["plan"]
    by = plan.get("planner", "?") + (f" {plan['template']}" if plan.get("template") else "")
    critical = preview["criticalPath"]
    lines = [
        f"plan by {by}: {preview['totalSteps']} steps, about "
        f"{format_duration(preview['estimatedDurationS'])} with unlimited workers",
        "critical path: " + " -> ".join(critical),
    ]
    if preview.get("stepsWithoutEstimate"):
        lines.append("no estimate (counted as 0s): " + ", ".join(preview["stepsWithoutEstimate"]))
    lines.append("")
    rows = [["STEP", "CAPABILITIES", "ESTIMATE", "STARTS AT", "SLACK", ""]]
    for step_id, depth in plan_tree(plan["steps"]):
        step = preview["steps"][step_id]
        estimate = step.get("estimateS")
        rows.append(
            [
                "  " * depth + step_id,
                ",".join(step["requiredCapabilities"]),
                f"{format_duration(estimate)} ({step['estimateSource']})" if estimate else "-",
                format_duration(step["earliestStartS"]),
                format_duration(step["slackS"]),
                "critical" if step_id in critical else "",
            ]
        )
    lines += render_table(rows)
    return lines
