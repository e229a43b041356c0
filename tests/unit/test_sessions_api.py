"""Listing sessions, updating context, and retention, through the API on fakeredis."""

import pytest

from api import create_app
from orchestrator.core.fleet import DEFAULT_AGENTS
from orchestrator.settings import Settings
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.keys import Keys
from tests.support.recording import RecordingDispatcher


@pytest.fixture
def client(any_redis):
    registry = AgentRegistry(any_redis, Keys("meowstik"))
    for agent in DEFAULT_AGENTS:
        registry.register(agent, worker="w1", now_ms=0, alive_ms=10**13)
    app = create_app(
        Settings(session_retention_s=120), redis_client=any_redis, dispatcher=RecordingDispatcher()
    )
    return app.test_client()


def submit(client, user):
    response = client.post(
        "/api/orchestrator/orchestrate", json={"goal": "Write a report about owls", "userId": user}
    )
    assert response.status_code == 202
    return response.get_json()["sessionId"]


def test_sessions_are_listed_newest_first_by_user_and_status_a_page_at_a_time(client):
    alice = [submit(client, "alice") for _ in range(5)]
    bob = submit(client, "bob")
    client.post(f"/api/orchestrator/sessions/{alice[1]}/cancel")
    first = client.get("/api/orchestrator/sessions?userId=alice&limit=2").get_json()
    assert first["count"] == 2 and first["nextCursor"]
    assert all(s["userId"] == "alice" for s in first["sessions"])
    seen = [s["sessionId"] for s in first["sessions"]]
    cursor = first["nextCursor"]
    while cursor:
        page = client.get(f"/api/orchestrator/sessions?userId=alice&limit=2&cursor={cursor}")
        body = page.get_json()
        seen += [s["sessionId"] for s in body["sessions"]]
        cursor = body["nextCursor"]
    assert sorted(seen) == sorted(alice) and len(seen) == len(set(seen))
    starts = [client.get(f"/api/orchestrator/sessions/{s}").get_json()["startTime"] for s in seen]
    assert starts == sorted(starts, reverse=True)
    cancelled = client.get("/api/orchestrator/sessions?status=cancelled").get_json()
    assert [s["sessionId"] for s in cancelled["sessions"]] == [alice[1]]
    executing = client.get("/api/orchestrator/sessions?status=executing&limit=200").get_json()
    assert set(s["sessionId"] for s in executing["sessions"]) == set(alice + [bob]) - {alice[1]}
    both = client.get("/api/orchestrator/sessions?userId=alice&status=cancelled").get_json()
    assert [s["sessionId"] for s in both["sessions"]] == [alice[1]]


@pytest.mark.parametrize(
    "query, location",
    [
        ("status=sleeping", "query.status"),
        ("limit=0", "query.limit"),
        ("limit=x", "query.limit"),
        ("bogus=1", "query.bogus"),
    ],
)
def test_bad_list_queries_are_422_saying_which_parameter(client, query, location):
    response = client.get(f"/api/orchestrator/sessions?{query}")
    assert response.status_code == 422
    assert response.get_json()["error"]["details"]["errors"][0]["location"] == location


def test_a_malformed_cursor_is_a_422(client):
    response = client.get("/api/orchestrator/sessions?cursor=nope")
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "invalid_cursor"


def test_context_updates_merge_into_shared_state(client):
    sid = submit(client, "carol")
    response = client.patch(
        f"/api/orchestrator/sessions/{sid}/context",
        json={"tone": "formal", "limits": {"words": 500}},
    )
    assert response.status_code == 200
    assert response.get_json()["sharedState"] == {"tone": "formal", "limits": {"words": 500}}
    again = client.patch(f"/api/orchestrator/sessions/{sid}/context", json={"tone": "casual"})
    assert again.get_json()["sharedState"] == {"tone": "casual", "limits": {"words": 500}}
    bad = client.patch(f"/api/orchestrator/sessions/{sid}/context", json={"bad key!": 1})
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "invalid_context_key"
    client.post(f"/api/orchestrator/sessions/{sid}/cancel")
    late = client.patch(f"/api/orchestrator/sessions/{sid}/context", json={"tone": "x"})
    assert late.status_code == 409
    assert client.patch("/api/orchestrator/sessions/nope/context", json={}).status_code == 404


def test_a_finished_session_expires_after_the_retention(client, any_redis):
    sid = submit(client, "dave")
    keys = Keys("meowstik")
    assert any_redis.ttl(keys.session(sid)) == -1  # running: kept
    client.post(f"/api/orchestrator/sessions/{sid}/cancel")
    for key in keys.session_owned(sid):
        if any_redis.exists(key):
            assert 0 < any_redis.ttl(key) <= 120, key
