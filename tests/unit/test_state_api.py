"""The State Manager over REST (/api/orchestrator/sessions/<id>/state), in process on fakeredis
and a real redis-server: every route, versions and 409s, owners, and hostile input."""

from __future__ import annotations

import pytest

from api import create_app
from orchestrator.core.fleet import DEFAULT_AGENTS
from orchestrator.settings import Settings
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.keys import Keys
from tests.support.recording import RecordingDispatcher

ALICE = "alice-token-0123456789"
BOB = "bob-token-0123456789ab"
ADMIN = "admin-token-0123456789"
TOKENS = f"alice:user:{ALICE},bob:user:{BOB},ops:admin:{ADMIN}"
KEYS = Keys("meowstik")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def app(any_redis):
    registry = AgentRegistry(any_redis, KEYS)
    for agent in DEFAULT_AGENTS:
        registry.register(agent, worker="w1", now_ms=0, alive_ms=10**13)
    settings = Settings(api_tokens=TOKENS, max_state_value_bytes=1024)
    return create_app(settings, redis_client=any_redis, dispatcher=RecordingDispatcher())


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def sid(client) -> str:
    plan = {"steps": [{"id": "a", "title": "a", "requiredCapabilities": ["web_research"]}]}
    reply = client.post(
        "/api/orchestrator/orchestrate", json={"goal": "g", "plan": plan}, headers=auth(ALICE)
    )
    assert reply.status_code == 202
    return reply.get_json()["sessionId"]


def url(sid: str, tail: str = "") -> str:
    return f"/api/orchestrator/sessions/{sid}/state{tail}"


def redis_keys(redis_client) -> dict[bytes, object]:
    """Every session key with its contents: what a refused request must not change (DUMP is
    not stable for a hash stored as a hash table: its field order follows rehashing)."""
    read = {
        b"hash": redis_client.hgetall,
        b"string": redis_client.get,
        b"set": redis_client.smembers,
        b"list": lambda k: redis_client.lrange(k, 0, -1),
        b"zset": lambda k: redis_client.zrange(k, 0, -1, withscores=True),
        b"stream": lambda k: redis_client.xrange(k),
    }
    return {k: read[redis_client.type(k)](k) for k in redis_client.keys("meowstik:session:*")}


def test_a_put_value_is_read_back_with_its_version_and_writer(client, sid):
    put = client.put(url(sid, "/plan"), json={"value": {"n": 1}}, headers=auth(ALICE))
    assert put.status_code == 200
    assert put.get_json() == {"sessionId": sid, "key": "plan", "type": "shared", "version": 1}

    again = client.put(url(sid, "/plan"), json={"value": {"n": 2}}, headers=auth(ALICE))
    assert again.get_json()["version"] == 2

    one = client.get(url(sid, "/plan"), headers=auth(ALICE)).get_json()
    assert one["value"] == {"n": 2} and one["version"] == 2 and one["type"] == "shared"
    assert one["updatedBy"] == "user:alice" and one["updatedAt"].endswith("Z")
    every = client.get(url(sid), headers=auth(ALICE)).get_json()
    assert every["shared"]["plan"]["value"] == {"n": 2}
    assert every["shared"]["plan"]["version"] == 2
    assert every["temporary"] == {} and every["private"] == {}


def test_temporary_entries_need_a_ttl_and_show_when_they_expire(client, sid):
    missing = client.put(
        url(sid, "/t"), json={"value": 1, "type": "temporary"}, headers=auth(ALICE)
    )
    assert missing.status_code == 422
    assert "ttl_s" in missing.get_json()["error"]["message"]
    ok = client.put(
        url(sid, "/t"), json={"value": 1, "type": "temporary", "ttlSeconds": 60},
        headers=auth(ALICE),
    )  # fmt: skip
    assert ok.status_code == 200
    every = client.get(url(sid), headers=auth(ALICE)).get_json()
    assert every["temporary"]["t"]["value"] == 1 and every["temporary"]["t"]["expiresAt"]


def test_private_state_is_listed_by_agent_for_the_owner(client, sid):
    body = {"value": "mine", "type": "private", "agentId": "coder-001"}
    assert client.put(url(sid, "/k"), json=body, headers=auth(ALICE)).status_code == 200
    every = client.get(url(sid), headers=auth(ALICE)).get_json()
    assert every["private"] == {"coder-001": {"k": every["private"]["coder-001"]["k"]}}
    assert every["private"]["coder-001"]["k"]["value"] == "mine"
    assert client.get(url(sid, "/k"), headers=auth(ALICE)).status_code == 404
    seen = client.get(url(sid, "/k?agentId=coder-001"), headers=auth(ALICE)).get_json()
    assert seen["type"] == "private" and seen["agentId"] == "coder-001"


def test_if_version_guards_a_put(client, sid):
    client.put(url(sid, "/n"), json={"value": 1}, headers=auth(ALICE))
    stale = client.put(url(sid, "/n"), json={"value": 5, "ifVersion": 0}, headers=auth(ALICE))
    assert stale.status_code == 409
    assert stale.get_json()["error"]["code"] == "state_conflict"
    assert stale.get_json()["error"]["details"]["keys"] == ["n"]
    assert client.get(url(sid, "/n"), headers=auth(ALICE)).get_json()["value"] == 1
    fresh = client.put(url(sid, "/n"), json={"value": 5, "ifVersion": 1}, headers=auth(ALICE))
    assert fresh.status_code == 200 and fresh.get_json()["version"] == 2
    first = client.put(url(sid, "/new"), json={"value": 0, "ifVersion": 0}, headers=auth(ALICE))
    assert first.status_code == 200


def test_delete_answers_204_and_the_entry_is_gone(client, sid):
    client.put(url(sid, "/gone"), json={"value": 1}, headers=auth(ALICE))
    assert client.delete(url(sid, "/gone"), headers=auth(ALICE)).status_code == 204
    assert client.get(url(sid, "/gone"), headers=auth(ALICE)).status_code == 404
    assert client.delete(url(sid, "/gone"), headers=auth(ALICE)).status_code == 204


def test_a_transaction_commits_all_or_reports_the_changed_keys(client, sid):
    client.put(url(sid, "/a"), json={"value": 1}, headers=auth(ALICE))
    body = {
        "set": [{"key": "a", "value": 2}, {"key": "b", "value": [1], "type": "temporary",
                                          "ttlSeconds": 30}],
        "delete": ["zzz"],
        "expect": {"a": 1},
    }  # fmt: skip
    done = client.post(url(sid, "/transactions"), json=body, headers=auth(ALICE))
    assert done.status_code == 200
    assert done.get_json() == {"sessionId": sid, "committed": True, "versions": {
        "a": 2, "b": 1, "zzz": 0}}  # fmt: skip

    again = client.post(url(sid, "/transactions"), json=body, headers=auth(ALICE))
    assert again.status_code == 409
    assert again.get_json()["error"]["details"]["keys"] == ["a"]
    assert client.get(url(sid, "/a"), headers=auth(ALICE)).get_json()["version"] == 2


def test_a_context_patch_is_one_versioned_shared_state_write(client, sid):
    reply = client.patch(
        f"/api/orchestrator/sessions/{sid}/context", json={"x": 1}, headers=auth(ALICE)
    )
    assert reply.status_code == 200 and reply.get_json()["sharedState"] == {"x": 1}
    entry = client.get(url(sid, "/x"), headers=auth(ALICE)).get_json()
    assert entry["version"] == 1 and entry["updatedBy"] == "user:alice"


def test_every_change_is_logged_as_a_state_updated_event(client, sid):
    client.put(url(sid, "/k"), json={"value": 1}, headers=auth(ALICE))
    client.delete(url(sid, "/k"), headers=auth(ALICE))
    logs = client.get(f"/api/orchestrator/sessions/{sid}/logs", headers=auth(ALICE)).get_json()
    changes = [e["data"] for e in logs["logs"] if e["message"] == "State updated"]
    assert changes == [
        {"key": "k", "type": "shared", "op": "set", "version": 1, "by": "user:alice"},
        {"key": "k", "type": "shared", "op": "delete", "version": 2, "by": "user:alice"},
    ]


def test_another_users_session_state_is_a_404_and_an_admin_sees_it(client, sid):
    for method, body in (("get", None), ("put", {"value": 1}), ("delete", None)):
        reply = getattr(client, method)(url(sid, "/k"), json=body, headers=auth(BOB))
        assert reply.status_code == 404, method
        assert reply.get_json()["error"]["code"] == "session_not_found"
    assert client.get(url(sid), headers=auth(BOB)).status_code == 404
    tx = client.post(url(sid, "/transactions"), json={"set": []}, headers=auth(BOB))
    assert tx.status_code == 404
    assert client.get(url(sid), headers=auth(ADMIN)).status_code == 200


def test_an_unknown_session_is_a_404(client):
    assert client.get(url("orch-1-ffffffff"), headers=auth(ADMIN)).status_code == 404
    put = client.put(url("orch-1-ffffffff", "/k"), json={"value": 1}, headers=auth(ADMIN))
    assert put.status_code == 404


def test_a_finished_session_refuses_writes_with_a_409(client, sid):
    client.post(f"/api/orchestrator/sessions/{sid}/cancel", headers=auth(ALICE))
    put = client.put(url(sid, "/k"), json={"value": 1}, headers=auth(ALICE))
    assert put.status_code == 409 and put.get_json()["error"]["code"] == "session_finished"


@pytest.mark.parametrize(
    "path, body, status",
    [
        ("/bad key", {"value": 1}, 422),  # a space: not a state key
        ("/" + "k" * 129, {"value": 1}, 422),
        ("/k", {"value": "x" * 2000}, 422),  # over max_state_value_bytes (1024 here)
        ("/k", {"value": 1, "type": "global"}, 422),
        ("/k", {"value": 1, "ttlSeconds": 5}, 422),  # a TTL on shared state
        ("/k", {"value": 1, "type": "private"}, 422),  # private without an agent
        ("/k", {"value": 1, "unknown": True}, 422),
        ("/k", {"value": 1, "ifVersion": -1}, 422),
        ("/k", {}, 422),  # no value
        ("/k", [1, 2], 400),  # not an object: malformed for every body
    ],
)
def test_hostile_puts_are_refused_and_write_nothing(client, sid, any_redis, path, body, status):
    before = redis_keys(any_redis)
    reply = client.put(url(sid, path), json=body, headers=auth(ALICE))
    assert reply.status_code == status, reply.get_json()
    assert reply.is_json and reply.get_json()["error"]["code"]
    assert redis_keys(any_redis) == before


def test_a_deeply_nested_value_is_refused_and_writes_nothing(client, sid, any_redis):
    before = redis_keys(any_redis)
    deep = "[" * 200 + "]" * 200
    headers = {**auth(ALICE), "Content-Type": "application/json"}
    reply = client.put(url(sid, "/k"), data='{"value": ' + deep + "}", headers=headers)
    assert 400 <= reply.status_code < 500 and reply.is_json
    assert redis_keys(any_redis) == before


@pytest.mark.parametrize(
    "body",
    [
        {"set": [{"key": "bad key", "value": 1}]},
        {"set": [{"key": "k"}]},
        {"delete": [{"key": "k", "type": "nope"}]},
        {"expect": {"k": "one"}},
        {"set": [{"key": f"k{i}", "value": i} for i in range(101)]},
        {"commit": True},
    ],
)
def test_hostile_transactions_are_422_and_write_nothing(client, sid, any_redis, body):
    before = redis_keys(any_redis)
    reply = client.post(url(sid, "/transactions"), json=body, headers=auth(ALICE))
    assert reply.status_code == 422, reply.get_json()
    assert redis_keys(any_redis) == before
