"""Workflow templates: loading, checking, matching goals and filling parameters."""

import textwrap
from pathlib import Path

import pytest

from orchestrator.core.errors import TemplateError, TemplateParameterError
from orchestrator.core.graph import PlanGraph
from orchestrator.planning.templates import instantiate, load_templates, parse_template

SHIPPED = {"rest_api", "blog_post", "research_report", "code_review"}


def write(folder, name, text):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


MINIMAL = """
    name: {name}
    title: A custom flow
    match: ['\\bcustom flow\\b(?:\\s+for\\s+(?P<who>\\w+))?']
    parameters:
      who: {{description: for whom, default: everyone}}
      count: {{type: integer}}
    steps:
      - id: one
        title: Do it for {{{{who}}}}
        requiredCapabilities: [web_research]
        parameters: {{times: '{{{{count}}}}', label: 'x{{{{count}}}}'}}
"""


def test_the_shipped_templates_load_without_problems_and_are_valid_graphs():
    library = load_templates([])
    assert library.problems == []
    assert SHIPPED <= set(library.templates)
    for name in SHIPPED:
        template = library.templates[name]
        required = {n: "x" for n, p in template.parameters.items() if p.required}
        PlanGraph.build(instantiate(template, "a goal", required))


def test_the_rest_api_template_is_the_spec_tree_with_three_subtasks_under_implement():
    library = load_templates([])
    steps = instantiate(library.get("rest_api"), "Build a REST API", {"resource": "orders"})
    assert [s.id for s in steps] == ["design", "research", "implement", "tests", "review"]
    implement = steps[2]
    assert [s.id for s in implement.subtasks] == [
        "user-endpoints",
        "auth-endpoints",
        "error-handling",
    ]
    assert implement.subtasks[0].title == "Create the orders endpoints"
    graph = PlanGraph.build(steps)
    assert set(graph.nodes["implement"].depends_on) == {
        "design",
        "research",
        "user-endpoints",
        "auth-endpoints",
        "error-handling",
    }


@pytest.mark.parametrize(
    ("goal", "template", "groups"),
    [
        ("Build a REST API for todos", "rest_api", {"resource": "todos"}),
        (
            "Research and write a blog post about quantum computing",
            "blog_post",
            {"topic": "quantum computing"},
        ),
        ("Write a research report on solar panels.", "research_report", {"topic": "solar panels"}),
        (
            "Please review the pull request for the login page",
            "code_review",
            {"target": "the login page"},
        ),
    ],
)
def test_goals_match_their_template_and_capture_parameters(goal, template, groups):
    matched = load_templates([]).match(goal)
    assert matched is not None and matched.template.name == template
    assert matched.groups == groups


def test_a_goal_no_template_describes_matches_nothing():
    assert load_templates([]).match("Research and implement user authentication") is None


def test_initial_context_beats_the_goal_which_beats_the_default(tmp_path):
    write(tmp_path, "custom.yaml", MINIMAL.format(name="custom"))
    library = load_templates([tmp_path])
    template = library.get("custom")
    matched = library.match("run the custom flow for alice")
    assert matched.groups == {"who": "alice"}
    by_goal = instantiate(template, "g", {"count": 2}, matched.groups)[0]
    by_context = instantiate(template, "g", {"count": 2, "who": "bob"}, matched.groups)[0]
    by_default = instantiate(template, "g", {"count": 2})[0]
    assert (by_goal.title, by_context.title, by_default.title) == (
        "Do it for alice",
        "Do it for bob",
        "Do it for everyone",
    )
    # a parameter that is a whole placeholder keeps its JSON type; inside text it is rendered
    assert by_goal.parameters == {"times": 2, "label": "x2"}


def test_a_missing_or_mistyped_parameter_names_the_context_key_to_set(tmp_path):
    write(tmp_path, "custom.yaml", MINIMAL.format(name="custom"))
    template = load_templates([tmp_path]).get("custom")
    with pytest.raises(TemplateParameterError) as missing:
        instantiate(template, "g", {})
    assert missing.value.details["missing"] == ["count"]
    assert "initialContext.count" in missing.value.message
    with pytest.raises(TemplateParameterError) as wrong:
        instantiate(template, "g", {"count": "two"})
    assert wrong.value.details["wrongType"] == {"count": "expected integer, got str"}


def test_a_user_template_replaces_a_built_in_one_of_the_same_name(tmp_path):
    write(tmp_path, "mine.yaml", MINIMAL.format(name="blog_post"))
    library = load_templates([tmp_path])
    assert library.get("blog_post").title == "A custom flow"
    assert library.sources["blog_post"].endswith("mine.yaml")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "name: bad\ntitle: t\nsteps: [{id: a, title: '{{nope}}', requiredCapabilities: [x]}]",
            "nope",
        ),
        (
            "name: bad\ntitle: t\nmatch: ['(']\n"
            "steps: [{id: a, title: a, requiredCapabilities: [x]}]",
            "match pattern",
        ),
        (
            "name: bad\ntitle: t\nsteps:\n"
            " - {id: a, title: a, requiredCapabilities: [x], dependsOn: [b]}\n"
            " - {id: b, title: b, requiredCapabilities: [x], dependsOn: [a]}",
            "cycle",
        ),
        ("name: bad\ntitle: t\nsteps: []", "steps"),
        ("- just\n- a list", "mapping"),
        ("name: bad\n title: : :", "not valid YAML"),
    ],
)
def test_a_broken_template_file_is_reported_with_its_path_and_not_used(tmp_path, text, fragment):
    path = write(tmp_path, "bad.yaml", text)
    library = load_templates([tmp_path])
    assert "bad" not in library.templates
    assert len(library.problems) == 1
    problem = library.problems[0]
    assert problem["file"] == str(path) and fragment in problem["message"]
    with pytest.raises(TemplateError):
        parse_template(text, str(path))


def test_asking_for_a_broken_template_says_why_it_failed_to_load(tmp_path):
    write(
        tmp_path,
        "bad.yaml",
        "name: bad\ntitle: t\nsteps: [{id: a, title: '{{nope}}', requiredCapabilities: [x]}]",
    )
    with pytest.raises(TemplateError) as error:
        load_templates([tmp_path]).get("bad")
    assert error.value.code == "unknown_template" and "nope" in error.value.message


def test_a_missing_template_folder_is_a_reported_problem(tmp_path):
    library = load_templates([tmp_path / "absent"])
    assert SHIPPED <= set(library.templates)
    assert library.problems == [
        {"file": str(tmp_path / "absent"), "message": "not a readable directory"}
    ]


def test_the_readme_template_example_is_the_example_file_and_it_loads():
    root = Path(__file__).resolve().parents[2]
    example = root / "examples" / "templates" / "incident_review.yaml"
    assert f"```yaml\n{example.read_text()}```" in (root / "README.md").read_text()
    library = load_templates([example.parent])
    assert library.problems == []
    matched = library.match("Run the incident review for checkout-api")
    assert matched.template.name == "incident_review" and matched.groups == {
        "service": "checkout-api"
    }
    steps = instantiate(matched.template, "g", {}, matched.groups)
    assert steps[0].title == "Build the timeline of checkout-api over 24h"
    assert steps[1].parameters == {"severity": 2} and len(steps[1].subtasks) == 2
