"""Live events over SSE on a real cluster: resuming with Last-Event-ID loses and repeats nothing."""

import json
import uuid

import pytest
import redis
import requests

from tests.support.plans import step

pytestmark = pytest.mark.integration


def sse_events(response):
    """Parse a text/event-stream response into (id, event, data) tuples as they arrive."""
    event_id = kind = None
    data: list[str] = []
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if data:
                yield event_id, kind, json.loads("\n".join(data))
            event_id, kind, data = None, None, []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "id":
                event_id = value
            elif field == "event":
                kind = value
            elif field == "data":
                data.append(value)


def all_log_ids(cluster, sid):
    ids, cursor = [], None
    while True:
        query = "limit=200" + (f"&cursor={cursor}" if cursor else "")
        page = requests.get(
            f"{cluster.api_url}/api/orchestrator/sessions/{sid}/logs?{query}", timeout=10
        ).json()
        ids += [entry["id"].removeprefix("log-") for entry in page["logs"]]
        cursor = page["nextCursor"]
        if not cursor:
            return ids


def test_a_client_that_reconnects_with_last_event_id_gets_every_event_once_in_order(cluster):
    client = redis.Redis.from_url(cluster.redis_url)
    gate = uuid.uuid4().hex
    plan = {
        "steps": [
            step("A", "echo_work"),
            step("G", "gated_work", "A", gate=gate),
            step("E", "echo_work", "G"),
        ]
    }
    sid = cluster.submit({"goal": "events", "plan": plan})["sessionId"]
    url = f"{cluster.api_url}/api/orchestrator/sessions/{sid}/events"
    # Given a client that reads events until G has started, then disconnects
    first = []
    with requests.get(url, stream=True, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        for event in sse_events(response):
            first.append(event)
            if event[1] == "step.started" and event[2]["taskId"] == "G":
                break
    # When the session goes on and finishes while it is away
    client.lpush(f"test:gate:{gate}", "open")
    assert cluster.wait_session(sid)["status"] == "completed"
    # Then reconnecting with Last-Event-ID delivers the rest, through the session's end
    with requests.get(
        url, headers={"Last-Event-ID": first[-1][0]}, stream=True, timeout=30
    ) as response:
        second = list(sse_events(response))
    received = [event_id for event_id, _, _ in first + second]
    assert received == all_log_ids(cluster, sid)  # every event, once, in order
    assert second[-1][1] == "session.finished"
    assert second[-1][2]["progress"] == {
        "completedTasks": 3,
        "failedTasks": 0,
        "totalTasks": 3,
        "status": "completed",
    }
    kinds = [kind for _, kind, _ in first + second]
    assert kinds[0] == "session.created"
    assert kinds.count("step.completed") == 3 and kinds.count("step.started") == 3


def test_a_finished_session_streams_its_history_and_closes(cluster):
    sid = cluster.submit({"goal": "quick", "plan": {"steps": [step("Q", "echo_work")]}})[
        "sessionId"
    ]
    cluster.wait_session(sid)
    with requests.get(
        f"{cluster.api_url}/api/orchestrator/sessions/{sid}/events", stream=True, timeout=30
    ) as response:
        events = list(sse_events(response))
    assert [e[0] for e in events] == all_log_ids(cluster, sid)
    assert events[-1][1] == "session.finished"
