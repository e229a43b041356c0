"""step.delta events over SSE on a real cluster (gunicorn API, Celery worker, redis-server): text
a DeltaWriter streams for a running step reaches a connected client as it is written, coalesced;
a client that reconnects with Last-Event-ID in the middle gets exactly the rest of both the log
and the deltas; ids that are not event ids answer 422 JSON."""

from __future__ import annotations

import uuid

import pytest
import redis
import requests

from orchestrator.store.deltas import DeltaStream
from orchestrator.store.keys import Keys
from tests.integration.test_events import all_log_ids, sse_events
from tests.support.cluster import wait_for
from tests.support.plans import step

pytestmark = pytest.mark.integration

FRAGMENTS = [f"word{i} " for i in range(30)] + ["<i>markup</i>", " ünï \u2603"]


def events_url(cluster, sid: str) -> str:
    return f"{cluster.api_url}/api/orchestrator/sessions/{sid}/events"


def running(cluster, sid: str, step_id: str) -> dict:
    return wait_for(
        lambda: (s := cluster.session(sid)["steps"][step_id])["status"] == "running" and s,
        what=f"{step_id} running",
    )


def read_until(events, predicate) -> list[tuple]:
    """Events from the open stream up to and including the first that ``predicate`` accepts."""
    got = []
    for event in events:
        got.append(event)
        if predicate(event):
            return got
    raise AssertionError(f"the stream ended first: {got[-3:]}")


def without_progress(events) -> list[tuple]:
    """Events as (id, event, data) without ``progress``, which says how far the session was
    when the event was sent."""
    return [(i, k, {f: v for f, v in d.items() if f != "progress"}) for i, k, d in events]


def is_delta(event, seq: int) -> bool:
    return event[1] == "step.delta" and event[2]["seq"] == seq


def test_deltas_stream_live_and_a_resume_in_the_middle_gets_exactly_the_rest(cluster):
    client = redis.Redis.from_url(cluster.redis_url)
    gate = uuid.uuid4().hex
    plan = {"steps": [step("G", "gated_work", gate=gate), step("E", "echo_work", "G")]}
    sid = cluster.submit({"goal": "deltas", "plan": plan})["sessionId"]
    agent = running(cluster, sid, "G")["agentId"]
    # the step's text, chunked by size alone: every 12 characters or more make one entry
    writer = DeltaStream(client, Keys()).writer(sid, "G", agent, clock=lambda: 0.0, flush_chars=12)
    half = len(FRAGMENTS) // 2
    try:
        with requests.get(events_url(cluster, sid), stream=True, timeout=30) as response:
            events = sse_events(response)
            # Given a client following the session while G runs
            first = read_until(events, lambda e: e[1] == "step.started" and e[2]["taskId"] == "G")
            # When G streams text, the client gets it as it is written, without reconnecting
            for fragment in FRAGMENTS[:3]:
                writer.on_delta(fragment)
            first += read_until(events, lambda e: is_delta(e, 1))
            for fragment in FRAGMENTS[3:half]:
                writer.on_delta(fragment)
            written = writer.seq
            first += read_until(events, lambda e: is_delta(e, written))
            # and disconnects in the middle of it
        # When the rest is written, the step finishes and the session ends while it is away
        for fragment in FRAGMENTS[half:]:
            writer.on_delta(fragment)
        writer.close()
    finally:
        client.lpush(f"test:gate:{gate}", "open")
    assert cluster.wait_session(sid)["status"] == "completed"
    # Then reconnecting with the last id it got delivers exactly the rest of both streams
    with requests.get(
        events_url(cluster, sid), headers={"Last-Event-ID": first[-1][0]}, stream=True, timeout=30
    ) as response:
        second = list(sse_events(response))
    everything = first + second
    deltas = [data for _, kind, data in everything if kind == "step.delta"]
    assert "".join(d["text"] for d in deltas) == "".join(FRAGMENTS)
    assert [d["seq"] for d in deltas] == list(range(1, writer.seq + 1))  # none lost or repeated
    assert len(deltas) < len(FRAGMENTS)  # coalesced, not one event per fragment
    assert all(len(d["text"]) >= 12 for d in deltas[:-1]) and deltas[-1]["done"] is True
    assert {(d["stepId"], d["agentId"], d["type"]) for d in deltas} == {("G", agent, "step.delta")}
    logs = [event_id.split(".")[0] for event_id, kind, _ in everything if kind != "step.delta"]
    assert logs == all_log_ids(cluster, sid)  # and every log event, once, in order
    assert second[-1][1] == "session.finished"
    # and the whole history, read again from the start, is the same events with the same ids
    with requests.get(events_url(cluster, sid), stream=True, timeout=30) as response:
        assert without_progress(sse_events(response)) == without_progress(everything)
    # and the recorded reply is the step's own, not the deltas
    assert "gate" in cluster.session(sid)["results"][f"{sid}.G"]


@pytest.mark.parametrize(
    "hostile",
    [
        "nope",
        "1-0.",
        "1-0.x",
        "1-0.2-0.3-0",
        "99999999999999999999-0",
        "1-0.18446744073709551616-0",
        "log-1-0.abc",
        "<script>alert(1)</script>",
        "1" * 4000,
    ],
)
def test_a_last_event_id_that_is_not_an_event_id_answers_422_json(cluster, hostile):
    sid = cluster.submit({"goal": "hostile id", "plan": {"steps": [step("Q", "echo_work")]}})[
        "sessionId"
    ]
    for request in (
        {"headers": {"Last-Event-ID": hostile}},
        {"params": {"lastEventId": hostile}},
    ):
        response = requests.get(events_url(cluster, sid), timeout=10, **request)
        assert response.status_code == 422, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["error"]["code"] == "invalid_last_event_id"
