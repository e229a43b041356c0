"""GET /openapi.json (the OpenAPI 3.1 document, built once per app) and GET /docs (the same,
as a self-contained HTML page: no scripts, no external assets; Jinja escapes every text)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, render_template

from api.operations import Operation, html, ok

blueprint = Blueprint("docs", __name__, template_folder="../templates")

METHOD_ORDER = ("get", "post", "put", "patch", "delete")


def document() -> dict[str, Any]:
    """The app's document, built on first use and kept in ``app.extensions``."""
    found = current_app.extensions.get("meowstik_openapi")
    if found is None:
        # Imported here: api/openapi.py collects every route module's OPERATIONS, this one's too.
        from api.openapi import build_document

        found = current_app.extensions["meowstik_openapi"] = build_document()
    return found


@blueprint.get("/openapi.json")
def openapi_document():
    return jsonify(document())


def schema_name(schema: dict[str, Any] | None) -> str:
    """What the page shows for a schema: the referenced component's name, else its type."""
    if not schema:
        return ""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(schema_name(option) for option in schema["anyOf"])
    if schema.get("type") == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {schema_name(schema['additionalProperties'])}"
    return str(schema.get("type", "any"))


def page_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The operations grouped by tag, in the document's tag order."""
    components = doc["components"]["responses"]
    groups: dict[str, list[dict[str, Any]]] = {tag["name"]: [] for tag in doc.get("tags", [])}
    for path, item in doc["paths"].items():
        for method in sorted(item, key=METHOD_ORDER.index):
            op = item[method]
            body = next(iter(op.get("requestBody", {}).get("content", {}).items()), None)
            responses = []
            for status, response in op["responses"].items():
                if "$ref" in response:
                    name = response["$ref"].rsplit("/", 1)[-1]
                    response = {**components[name], "name": name}
                media = [
                    f"{media_type} {schema_name(spec.get('schema'))}".strip()
                    for media_type, spec in response.get("content", {}).items()
                ]
                responses.append(
                    {
                        "status": status,
                        "description": response["description"],
                        "content": media,
                        "headers": sorted(response.get("headers", {})),
                    }
                )
            groups.setdefault(op["tags"][0], []).append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op["summary"],
                    "id": op["operationId"],
                    "parameters": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "required": p.get("required", False),
                            "type": schema_name(p["schema"]),
                            "description": p.get("description", ""),
                        }
                        for p in op.get("parameters", [])
                    ],
                    "body": (body[0], schema_name(body[1]["schema"])) if body else None,
                    "responses": responses,
                    "secured": bool(op.get("security")),
                }
            )
    descriptions = {tag["name"]: tag.get("description", "") for tag in doc.get("tags", [])}
    return [
        {"tag": tag, "description": descriptions.get(tag, ""), "operations": ops}
        for tag, ops in groups.items()
        if ops
    ]


@blueprint.get("/docs")
def docs_page():
    doc = document()
    return render_template("docs.html", info=doc["info"], groups=page_rows(doc))


OPERATIONS = (
    Operation(
        "get",
        "/openapi.json",
        "docs.openapi_document",
        "This OpenAPI 3.1 document",
        "docs",
        {200: ok({"type": "object"}, "the document")},
        auth=False,
    ),
    Operation(
        "get",
        "/docs",
        "docs.docs_page",
        "The API reference as an HTML page",
        "docs",
        {200: html("the page")},
        auth=False,
    ),
)
