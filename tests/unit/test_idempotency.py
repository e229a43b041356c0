"""Idempotent submits (issue 22): an Idempotency-Key on POST /orchestrate makes at most one
session per (user, key): 20 concurrent submits with one key create one session and all get it;
a replay is a 200 saying so; another body with the key is a 422; keys are per user; a submit
that failed gives its key up; malformed keys are 422s."""

import threading
from collections import Counter

import pytest

from api import create_app
from orchestrator.settings import Settings
from orchestrator.store.keys import Keys
from tests.support.recording import RecordingDispatcher
from tests.support.world import build_world

ORCH = "/api/orchestrator"
ALICE = "alice-token-0123456789ab"
BOB = "bob-token-0123456789abcd"
PLAN = {"steps": [{"id": "s", "title": "s", "requiredCapabilities": ["web_research"]}]}
BODY = {"goal": "Research and implement user authentication", "plan": PLAN}


@pytest.fixture
def app(any_redis):
    settings = Settings(api_tokens=f"alice:user:{ALICE},bob:user:{BOB}")
    build_world(any_redis, settings, prefix=settings.key_prefix)  # the default agents, alive
    return create_app(settings, redis_client=any_redis, dispatcher=RecordingDispatcher())


def post(client, body, key, token=ALICE):
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(f"{ORCH}/orchestrate", json=body, headers=headers)


def session_keys(any_redis):
    return [k for k in any_redis.keys(f"{Keys().prefix}:session:*") if k.count(b":") == 2]


def test_twenty_concurrent_submits_with_one_key_create_one_session(app, any_redis):
    start = threading.Barrier(20)
    answers = []

    def submit():
        client = app.test_client()
        start.wait()
        response = post(client, BODY, "7d9f1c1e-5c1b-4a8e-9a51-0b3c7f0f2a10")
        answers.append(
            (
                response.status_code,
                response.get_json()["sessionId"],
                response.headers["Idempotent-Replayed"],
            )
        )

    threads = [threading.Thread(target=submit) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 20
    assert len({sid for _, sid, _ in answers}) == 1
    assert Counter((status, replayed) for status, _, replayed in answers) == {
        (202, "false"): 1,
        (200, "true"): 19,
    }
    assert len(session_keys(any_redis)) == 1


def test_a_replay_returns_the_session_as_it_is_and_another_body_is_refused(app, any_redis):
    client = app.test_client()
    first = post(client, BODY, "key-1")
    assert first.status_code == 202 and first.headers["Idempotent-Replayed"] == "false"
    sid = first.get_json()["sessionId"]
    # the same request spelled differently (a default written out, keys reordered) is the same
    again = post(client, {"plan": PLAN, "failurePolicy": "fail_fast", **BODY}, "key-1")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["sessionId"] == sid
    assert again.headers["Location"] == f"{ORCH}/sessions/{sid}"
    other = post(client, {**BODY, "goal": "something else"}, "key-1")
    assert other.status_code == 422
    error = other.get_json()["error"]
    assert error["code"] == "idempotency_key_reused" and error["details"]["sessionId"] == sid
    assert error["details"]["errors"][0]["location"] == "header.Idempotency-Key"
    # keys are per user: bob's "key-1" is his own
    bobs = post(client, BODY, "key-1", token=BOB)
    assert bobs.status_code == 202 and bobs.get_json()["sessionId"] != sid
    # without a key every submit is a new session
    plain = post(client, BODY, None)
    assert plain.status_code == 202 and plain.headers["Idempotent-Replayed"] == "false"
    assert len(session_keys(any_redis)) == 3


def test_a_submit_that_failed_gives_its_key_up(app):
    client = app.test_client()
    unroutable = {"goal": "g", "plan": {"steps": [
        {"id": "s", "title": "s", "requiredCapabilities": ["nobody_has_this"]}]}}  # fmt: skip
    failed = post(client, unroutable, "key-2")
    assert failed.status_code == 422 and failed.get_json()["error"]["code"] != (
        "idempotency_key_reused"
    )
    # the key is free again: the corrected request with the same key creates the session
    fixed = post(client, BODY, "key-2")
    assert fixed.status_code == 202 and fixed.headers["Idempotent-Replayed"] == "false"


@pytest.mark.parametrize("key", ["", " leading", "trailing ", "tab\there", "é", "x" * 256])
def test_malformed_keys_are_422s_naming_the_header(app, key):
    response = post(app.test_client(), BODY, key)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["details"]["errors"][0]["location"] == "header.Idempotency-Key"
