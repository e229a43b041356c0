"""step.delta events on the SSE endpoint, in-process (Flask's test client, a real redis-server):
deltas come merged with the log events in stream order, each event id carries both positions,
resuming after any event gives exactly the rest of both streams, old ids still resume, and ids
that are not event ids answer 422."""

from __future__ import annotations

import json

import pytest

from api import create_app
from api.routes.logs import event_id, in_order, parse_event_id
from orchestrator.core.models import AgentDefinition, Capability, OrchestrateRequest
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from orchestrator.store.deltas import DeltaStream
from orchestrator.store.keys import Keys
from tests.support.world import build_world

AGENT = AgentDefinition(
    id="w1", name="w1", type="t", max_load=2, capabilities=[Capability(name="work")]
)
PREFIX = "meowstik"  # the app's keys (Settings' default prefix)


def frames(body: str) -> list[tuple[str, str, dict]]:
    """(id, event, data) of each SSE frame with data; comments skipped."""
    out = []
    for block in body.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if "data" in fields:
            out.append((fields["id"], fields["event"], json.loads(fields["data"])))
    return out


@pytest.fixture
def finished(real_redis):
    """A session whose two steps streamed text between log events, then finished; the test
    client of an app on the same Redis; and the fragments each step streamed."""
    settings = Settings()
    world = build_world(real_redis, settings, agents=(AGENT,), prefix=PREFIX)
    deltas = DeltaStream(real_redis, Keys(PREFIX))
    steps = [{"id": s, "title": s, "requiredCapabilities": ["work"]} for s in ("A", "B")]
    request = OrchestrateRequest.model_validate({"goal": "deltas", "plan": {"steps": steps}})
    sid = world.engine.submit(request).session_id
    streamed = {"A": [f"a{i} " for i in range(7)], "B": ["<b>", "bold", "</b>"]}
    run_a = world.lifecycle.begin(sid, "A", AGENT.id)
    writer_a = deltas.writer(sid, "A", AGENT.id, clock=lambda: 0.0, flush_chars=4)
    for fragment in streamed["A"][:4]:
        writer_a.on_delta(fragment)
    run_b = world.lifecycle.begin(sid, "B", AGENT.id)  # a log event between A's chunks
    with deltas.writer(sid, "B", AGENT.id, clock=lambda: 0.0, flush_chars=1) as writer_b:
        for fragment in streamed["B"]:
            writer_b.on_delta(fragment)
    for fragment in streamed["A"][4:]:
        writer_a.on_delta(fragment)
    writer_a.close()
    world.lifecycle.succeed(run_b, StepResult("b"))
    world.lifecycle.succeed(run_a, StepResult("a"))
    app = create_app(settings, redis_client=real_redis, dispatcher=world.dispatcher)
    return app.test_client(), sid, streamed


def events(client, sid: str, last_id: str | None = None) -> list[tuple[str, str, dict]]:
    headers = {"Last-Event-ID": last_id} if last_id is not None else {}
    response = client.get(f"/api/orchestrator/sessions/{sid}/events", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return frames(response.get_data(as_text=True))


def test_deltas_arrive_as_step_delta_events_between_the_log_events(finished):
    client, sid, streamed = finished
    got = events(client, sid)
    kinds = [kind for _, kind, _ in got]
    assert kinds[0] == "session.created" and kinds[-1] == "session.finished"
    deltas = [data for _, kind, data in got if kind == "step.delta"]
    for step_id, fragments in streamed.items():
        mine = [d for d in deltas if d["stepId"] == step_id]
        assert "".join(d["text"] for d in mine) == "".join(fragments)
        assert [d["seq"] for d in mine] == list(range(1, len(mine) + 1))
        assert [d["done"] for d in mine] == [False] * (len(mine) - 1) + [True]
    assert len([d for d in deltas if d["stepId"] == "A"]) < len(streamed["A"])  # coalesced
    assert set(deltas[0]) == {"type", "stepId", "agentId", "text", "seq", "done", "progress"}
    assert deltas[0]["type"] == "step.delta" and deltas[0]["agentId"] == "w1"
    # (entries of both streams written in the same millisecond have no order between them, so
    # where B's start falls among A's chunks is not asserted here)


def test_event_ids_carry_both_positions_and_grow(finished):
    client, sid, _ = finished
    got = events(client, sid)
    cursors = [parse_event_id(event) for event, _, _ in got]
    assert None not in cursors
    first_delta = next(i for i, (_, kind, _) in enumerate(got) if kind == "step.delta")
    assert all("." not in event for event, _, _ in got[:first_delta])  # no delta yet: plain
    assert all("." in event for event, _, _ in got[first_delta:])
    for before, after in zip(cursors, cursors[1:], strict=False):
        moved = [after[i] != before[i] for i in (0, 1)]
        assert moved.count(True) == 1  # each event moves exactly one of the two positions


def test_resuming_after_any_event_gives_exactly_the_rest_of_both_streams(finished):
    client, sid, _ = finished
    got = events(client, sid)
    for index, (event, _, _) in enumerate(got[:-1]):
        assert events(client, sid, event) == got[index + 1 :], index
    for old_form in (f"log-{got[0][0]}", got[0][0]):  # a log id alone: deltas from the start
        assert events(client, sid, old_form) == got[1:]


@pytest.mark.parametrize(
    "hostile",
    [
        "abc",
        "1-0.",
        "1-0.x",
        ".1-0",
        "1-0.2-0.3-0",
        "log-",
        "1-0 ",
        "1-0\t",
        "99999999999999999999-0",
        "1-0.18446744073709551616-0",
        "1-0;2-0",
        "\u0661-0",  # an Arabic-Indic digit
        "-1-0",
        "1",
        "1-0.2",
        "x" * 5000,
    ],
)
def test_an_id_that_is_not_an_event_id_is_a_422_json_error(finished, hostile):
    client, sid, _ = finished
    for request in (
        {"headers": {"Last-Event-ID": hostile}},
        {"query_string": {"lastEventId": hostile}},
    ):
        response = client.get(f"/api/orchestrator/sessions/{sid}/events", **request)
        assert response.status_code == 422
        assert response.get_json()["error"]["code"] == "invalid_last_event_id"
        assert len(response.get_json()["error"]["message"]) < 300


def test_the_largest_stream_ids_are_accepted():
    top = f"{2**64 - 1}-{2**64 - 1}"
    assert parse_event_id(f"{top}.{top}") == (top, top)
    assert parse_event_id("log-5-1") == ("5-1", "0-0")
    assert event_id("5-1", "0-0") == "5-1" and event_id("5-1", "7-0") == "5-1.7-0"


def test_a_stream_that_filled_its_batch_holds_back_the_other_streams_later_entries():
    logs = [{"id": f"log-{ms}-0"} for ms in (1, 3, 5)]
    chunks = [{"id": f"{ms}-0"} for ms in (2, 4, 6, 7)]
    merged = in_order(logs, chunks, count=3)  # logs filled the batch: later ones may exist
    assert [entry["id"] for _, entry in merged] == ["log-1-0", "2-0", "log-3-0", "4-0", "log-5-0"]
    merged = in_order(logs, chunks, count=4)  # the deltas filled it: all logs up to 7 are here
    assert [is_delta for is_delta, _ in merged] == [False, True, False, True, False, True, True]
    both = in_order([{"id": "log-2-0"}], [{"id": "2-0"}], count=10)  # a tie: the log first
    assert [is_delta for is_delta, _ in both] == [False, True]
