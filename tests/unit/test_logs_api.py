"""Log queries and statistics: every filter is checked against the raw entries."""

import itertools

import pytest

from api import create_app
from orchestrator.core.errors import PermanentStepError, RetryableStepError
from orchestrator.core.models import AgentDefinition, Capability, OrchestrateRequest
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from tests.support.world import build_world

LEVELS = ["debug", "info", "warn", "error", "critical"]
AGENTS = tuple(
    AgentDefinition(
        id=f"w{i}", name=f"w{i}", type="t", max_load=2, capabilities=[Capability(name="work")]
    )
    for i in (1, 2)
)


@pytest.fixture
def setup(any_redis):
    settings = Settings(step_max_attempts=2, max_fallbacks=1)
    world = build_world(any_redis, settings, agents=AGENTS, prefix="meowstik")
    steps = [{"id": f"s{i}", "title": "s", "requiredCapabilities": ["work"]} for i in range(4)]
    request = OrchestrateRequest.model_validate(
        {"goal": "logs", "plan": {"steps": steps}, "failurePolicy": "continue"}
    )
    sid = world.engine.submit(request).session_id
    script = [  # s1 is retried, s2 fails on its agent and again on the fallback agent
        ("s0", StepResult("ok")),
        ("s1", RetryableStepError("flaky")),
        ("s2", PermanentStepError("no")),
        ("s3", StepResult("ok")),
        ("s2", PermanentStepError("still no")),
        ("s1", StepResult("ok")),
    ]
    for index, (step_id, outcome) in enumerate(script):
        agent = world.engine.snapshot(sid).steps[step_id].agent_id
        run = world.lifecycle.begin(sid, step_id, agent)
        run.step_input.logger.info("thinking", index=index)
        world.clock.advance(0.25)
        if isinstance(outcome, StepResult):
            world.lifecycle.succeed(run, outcome)
        else:
            world.lifecycle.fail(run, outcome)
    app = create_app(settings, redis_client=any_redis, dispatcher=world.dispatcher)
    client = app.test_client()
    raw = world.sessions._logbook.session_entries(sid, limit=10_000)  # noqa: SLF001
    return client, sid, raw


def logs(client, sid, query=""):
    response = client.get(f"/api/orchestrator/sessions/{sid}/logs?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_the_session_produced_a_varied_log(setup):
    _, _, raw = setup
    assert {e["level"] for e in raw} >= {"info", "warn", "error"}
    assert {e["source"] for e in raw} >= {"task", "orchestrator", "agent"}


@pytest.mark.parametrize(
    "level, source",
    list(
        itertools.product([None, "info", "warn", "error"], [None, "task", "orchestrator", "agent"])
    ),
)
def test_level_and_source_filters_match_the_raw_entries(setup, level, source):
    client, sid, raw = setup
    query = "&".join(f"{k}={v}" for k, v in (("level", level), ("source", source)) if v)
    expected = [
        e
        for e in raw
        if (level is None or LEVELS.index(e["level"]) >= LEVELS.index(level))
        and (source is None or e["source"] == source)
    ]
    assert logs(client, sid, query)["logs"] == expected


def test_agent_task_and_since_filters_match_the_raw_entries(setup):
    client, sid, raw = setup
    for agent in ("w1", "w2"):
        assert logs(client, sid, f"agentId={agent}")["logs"] == [
            e for e in raw if e.get("agentId") == agent
        ]
    for task in ("s0", "s1", "s2"):
        assert logs(client, sid, f"taskId={task}")["logs"] == [
            e for e in raw if e.get("taskId") == task
        ]
    middle = raw[len(raw) // 2]["timestamp"]
    assert logs(client, sid, f"since={middle}")["logs"] == [
        e for e in raw if e["timestamp"] >= middle
    ]


def test_pages_follow_the_cursor_and_cover_every_entry_once(setup):
    client, sid, raw = setup
    seen, cursor = [], None
    while True:
        page = logs(client, sid, "limit=3" + (f"&cursor={cursor}" if cursor else ""))
        seen += page["logs"]
        cursor = page["nextCursor"]
        if not cursor:
            break
        assert len(page["logs"]) == 3
    assert seen == raw


@pytest.mark.parametrize(
    "query, location",
    [
        ("level=loud", "query.level"),
        ("limit=0", "query.limit"),
        ("cursor=abc", "query.cursor"),
        ("since=yesterday", "query.since"),
        ("nope=1", "query.nope"),
    ],
)
def test_bad_log_queries_are_422_naming_the_parameter(setup, query, location):
    client, sid, _ = setup
    response = client.get(f"/api/orchestrator/sessions/{sid}/logs?{query}")
    assert response.status_code == 422
    assert response.get_json()["error"]["details"]["errors"][0]["location"] == location


def test_stats_count_levels_sources_agents_and_durations(setup):
    client, sid, raw = setup
    stats = client.get(f"/api/orchestrator/sessions/{sid}/stats").get_json()
    assert stats["totalEntries"] == len(raw)
    for level in LEVELS:
        assert stats["byLevel"][level] == sum(1 for e in raw if e["level"] == level)
    errors = sum(1 for e in raw if e["level"] in ("error", "critical"))
    assert stats["errorRate"] == pytest.approx(errors / len(raw))
    assert stats["stepDurations"]["count"] == 3  # s0, s1 and s3 completed
    assert stats["stepDurations"]["p50"] == pytest.approx(0.25)
    assert sum(a["completed"] for a in stats["agents"].values()) == 3


def test_recent_logs_span_sessions_and_the_session_finished_entry_is_last(setup):
    client, sid, raw = setup
    recent = client.get("/api/orchestrator/logs?limit=5").get_json()["logs"]
    # ids are per stream (session or global); the entries are the same
    without_id = lambda entry: {k: v for k, v in entry.items() if k != "id"}  # noqa: E731
    assert len(recent) == 5 and without_id(recent[-1]) == without_id(raw[-1])
    assert raw[-1]["message"] == "Session finished" and raw[-1]["data"] == {"status": "failed"}
