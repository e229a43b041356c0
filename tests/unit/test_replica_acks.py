"""Issue 23: a submit waits for replicas (MEOWSTIK_REDIS_MIN_REPLICA_ACKS) before its 202.

On the test redis-server, a master without replicas, ``WAIT 1`` always times out: what a
stalled replica looks like to the API. fakeredis knows no WAIT at all, so a deployment that
requires no replica (the default) is shown never to send one. The stalled-replica case against
a real master and replica is tests/reliability/test_replica_acks.py.
"""

import pytest

from api import create_app
from orchestrator.core.errors import ReplicaAckTimeoutError
from orchestrator.engine.idempotency import PENDING_S
from orchestrator.settings import Settings
from orchestrator.store.keys import Keys
from orchestrator.store.replication import DurableWrites, ReplicaAcks
from tests.support.recording import RecordingDispatcher
from tests.support.world import build_world

ORCH = "/api/orchestrator"
PLAN = {"steps": [{"id": "s", "title": "s", "requiredCapabilities": ["web_research"]}]}
BODY = {"goal": "Research and implement user authentication", "plan": PLAN}
WAIT_MS = 50


def build_app(client, dispatcher, **settings):
    configured = Settings(**settings)
    build_world(client, configured, prefix=configured.key_prefix)  # the default agents, alive
    return create_app(configured, redis_client=client, dispatcher=dispatcher).test_client()


def post(client, key=None):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(f"{ORCH}/orchestrate", json=BODY, headers=headers)


def session_keys(client):
    return [k for k in client.keys(f"{Keys().prefix}:session:*") if k.count(b":") == 2]


def test_without_required_replicas_no_wait_is_sent(fake_redis):
    # fakeredis answers WAIT with "unknown command": the default must never send it
    app = build_app(fake_redis, RecordingDispatcher())
    assert post(app, "key-1").status_code == 202
    assert post(app).status_code == 202


def test_a_transaction_too_few_replicas_confirm_is_written_and_reported(real_redis):
    durable = DurableWrites(real_redis, ReplicaAcks(replicas=1, timeout_ms=WAIT_MS))
    pipe = durable.transaction()
    pipe.hset("h", mapping={"a": "1"})
    pipe.rpush("l", "x")
    with pytest.raises(ReplicaAckTimeoutError) as raised:
        durable.commit(pipe)
    assert (raised.value.required, raised.value.acknowledged) == (1, 0)
    assert raised.value.waited_ms == WAIT_MS and raised.value.http_status == 503
    assert real_redis.hget("h", "a") == b"1" and real_redis.lrange("l", 0, -1) == [b"x"]


def test_a_submit_too_few_replicas_confirm_is_a_503_naming_the_session_it_started(real_redis):
    dispatcher = RecordingDispatcher()
    app = build_app(real_redis, dispatcher, redis_min_replica_acks=1, redis_replica_wait_ms=WAIT_MS)
    response = post(app, "key-1")
    assert response.status_code == 503 and response.headers["Retry-After"]
    error = response.get_json()["error"]
    assert error["code"] == "replica_ack_timeout"
    details = error["details"]
    assert details["retryable"] is True and details["waitedMs"] == WAIT_MS
    assert (details["replicasRequired"], details["replicasAcknowledged"]) == (1, 0)
    # the session is on the master and started like any other
    session = app.get(f"{ORCH}/sessions/{details['sessionId']}")
    assert session.status_code == 200 and session.get_json()["status"] == "executing"
    assert [item.session_id for item, _ in dispatcher.sent] == [details["sessionId"]]


def test_a_retry_with_the_key_gets_that_session_back_once_replicas_confirm_it(real_redis):
    dispatcher = RecordingDispatcher()
    waiting = build_app(
        real_redis, dispatcher, redis_min_replica_acks=1, redis_replica_wait_ms=WAIT_MS
    )
    first = post(waiting, "key-1").get_json()["error"]["details"]["sessionId"]
    # a retry still unconfirmed is a 503 naming the same session, not a second session
    again = post(waiting, "key-1")
    assert again.status_code == 503
    assert again.get_json()["error"]["details"]["sessionId"] == first
    # once the wait is satisfied (here: none required), the retry replays it
    satisfied = build_app(real_redis, dispatcher)
    replay = post(satisfied, "key-1")
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json()["sessionId"] == first
    assert len(session_keys(real_redis)) == 1


def test_a_claimed_key_lapses_unless_its_session_is_stored(any_redis):
    app = build_app(any_redis, RecordingDispatcher())
    store = build_world(any_redis, Settings(), prefix=Keys().prefix).sessions.idempotency
    # a claim whose submit never stored its session lives PENDING_S only
    assert store.claim("scope-1", "digest", "orch-1-abc", PENDING_S) is None
    assert 0 < any_redis.ttl(Keys().idempotency("scope-1")) <= PENDING_S
    # the transaction that stores the session keeps its key for the full TTL
    assert post(app, "key-1").status_code == 202
    [kept] = [k for k in any_redis.keys(Keys().idempotency("*")) if b"scope-1" not in k]
    assert any_redis.ttl(kept) > PENDING_S
