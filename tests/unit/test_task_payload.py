"""The worker's check of a step message's arguments, before anything uses them."""

from __future__ import annotations

import pytest

from workers.tasks import valid_payload

LONGEST = "s" * 128


@pytest.mark.parametrize(
    ("session_id", "step_id", "agent_id"),
    [
        ("orch-1700000000000-0a1b2c3d", "research", "researcher-001"),
        ("orch-1", "parent.child.2", None),  # no agent: routed on arrival
        ("a", "B", "x.r2"),  # replica ids
        (LONGEST, LONGEST, LONGEST),
        ("s_1", "step_1", "agent_1"),
    ],
)
def test_ids_of_the_shape_the_engine_makes_pass(session_id, step_id, agent_id) -> None:
    assert valid_payload(session_id, step_id, agent_id)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        12345,
        1.5,
        True,
        b"orch-1",
        ["orch-1"],
        {"id": "orch-1"},
        "",
        LONGEST + "s",  # 129 characters
        "../../x",
        "a/b",
        "a\\b",
        ".hidden",
        "-flag",
        "_under",
        "a:b",  # the key separator
        "{a}",  # a Redis Cluster hash tag
        "a*",  # a key pattern
        "a b",
        "a\n",  # "$" in a regex would let a trailing newline through
        "a\nb",
        "a\x00",
        "é",
        "１２３",  # non-ASCII digits
    ],
)
def test_session_and_step_ids_of_any_other_type_or_shape_are_refused(bad) -> None:
    assert not valid_payload(bad, "step", "agent-1")
    assert not valid_payload("orch-1", bad, "agent-1")


@pytest.mark.parametrize("bad", ["", "../agent", "agent\n", 7, ["agent"], "a" * 129])
def test_an_agent_id_is_none_or_a_valid_id(bad) -> None:
    assert valid_payload("orch-1", "step", None)
    assert not valid_payload("orch-1", "step", bad)


def test_the_task_drops_any_other_shape_of_arguments_before_the_runtime(monkeypatch) -> None:
    # Given the run_step task of a real app, with the runtime replaced by a recorder
    from orchestrator.settings import Settings
    from workers import runtime
    from workers.celery_app import RUN_STEP_TASK, create_celery_app
    from workers.time_limits import RunLimits

    app = create_celery_app(Settings(redis_url="redis://127.0.0.1:1/0"))
    calls = []

    class Recorder:
        def execute(self, *args):
            calls.append(args)

    monkeypatch.setattr(runtime, "runtime_for", lambda _app: Recorder())
    task = app.tasks[RUN_STEP_TASK]
    # When it is called with extra, unknown, missing or malformed arguments
    task.run("orch-1", "step", "agent-1", "extra")
    task.run("orch-1", "step", evil="1")
    task.run()
    task.run("orch-1", {"id": "step"}, "agent-1")
    # Then none reached the runtime; a well-formed call does
    assert calls == []
    task.run("orch-1", "step", "agent-1")
    # (called directly, not through a worker's StepRequest: no run token, no time limit)
    assert calls == [("orch-1", "step", "agent-1", RunLimits())]
