"""The default fleet: the spec's four agents and their capabilities (data only)."""

from __future__ import annotations

from orchestrator.core.models import AgentDefinition, Capability

# What each capability's model may call when a model is configured (capabilities[].tools; the
# built-in tools, orchestrator/core/builtin_tools.py and workers/tools/web.py)
_READ = ["workspace_read", "workspace_list", "state_get"]
_WRITE = ["workspace_write"]
_TOOLS = {
    "task_decomposition": ["state_get", "state_set"],
    "web_research": ["http_get", *_WRITE, "state_set"],
    "document_analysis": _READ,
    "data_synthesis": _READ,
    "document_creation": [*_READ, *_WRITE],
    "code_generation": [*_READ, *_WRITE],
    "code_refactoring": [*_READ, *_WRITE],
    "testing": [*_READ, *_WRITE],
    "code_review": _READ,
    "error_diagnosis": _READ,
}


def _cap(name: str, description: str, *domains: str) -> Capability:
    return Capability(
        name=name, description=description, domains=list(domains), tools=_TOOLS.get(name, [])
    )


PLANNER = AgentDefinition(
    id="planner-001",
    name="Planning Agent",
    type="planner",
    description="Breaks goals into steps, analyses dependencies and designs workflows.",
    capabilities=[
        _cap(
            "task_decomposition",
            "Break down complex goals into actionable subtasks",
            "planning",
            "strategy",
        ),
        _cap("dependency_analysis", "Find what must happen before what", "planning"),
        _cap("workflow_design", "Design the order and shape of work", "planning", "design"),
    ],
    priority=10,
    max_load=5,
)

RESEARCHER = AgentDefinition(
    id="researcher-001",
    name="Research Agent",
    type="researcher",
    description="Researches topics, analyses documents, synthesises findings and drafts text.",
    capabilities=[
        _cap("web_research", "Research a topic on the web", "research"),
        _cap("document_analysis", "Analyse documents given as context", "research"),
        _cap("data_synthesis", "Combine findings into a coherent whole", "research", "analysis"),
        _cap("document_creation", "Draft documents such as posts and reports", "communication"),
    ],
    priority=5,
    max_load=3,
)

CODER = AgentDefinition(
    id="coder-001",
    name="Coding Agent",
    type="coder",
    description="Generates, refactors and tests code.",
    capabilities=[
        _cap("code_generation", "Write code for a specification", "code"),
        _cap("code_refactoring", "Restructure existing code", "code"),
        _cap("testing", "Write and run tests", "code", "quality"),
    ],
    priority=5,
    max_load=3,
)

REVIEWER = AgentDefinition(
    id="reviewer-001",
    name="Review Agent",
    type="reviewer",
    description="Reviews code and documents and diagnoses errors.",
    capabilities=[
        _cap("code_review", "Review code for defects and style", "code", "quality"),
        _cap("error_diagnosis", "Find the cause of an error", "analysis"),
    ],
    priority=5,
    max_load=2,
)

DEFAULT_AGENTS: tuple[AgentDefinition, ...] = (PLANNER, RESEARCHER, CODER, REVIEWER)
