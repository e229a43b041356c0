"""Webhooks (issue 22): a session with a callbackUrl is put in the outbox by the script that
ends it (completed, failed or cancelled), delivered once with its summary, retried with backoff
when the receiver fails and recorded at every attempt, abandoned after MEOWSTIK_WEBHOOK_RETRY_S;
a refused callbackUrl is a 422 naming it; GET .../deliveries lists the attempts."""

from __future__ import annotations

import pytest

from api import create_app
from orchestrator.core.errors import (
    CallbackNotAllowedError,
    PermanentStepError,
    RetryableStepError,
)
from orchestrator.core.models import OrchestrateRequest
from orchestrator.core.step_runs import StepRun
from orchestrator.core.steps import StepResult
from orchestrator.engine.webhooks import Reply, Webhooks, delivery_id
from orchestrator.settings import Settings
from tests.support.recording import RecordingDispatcher
from tests.support.world import build_world

HOOK = "http://127.0.0.1:9/hooks/meowstik"
PLAN = {"steps": [{"id": "s", "title": "s", "requiredCapabilities": ["web_research"]}]}


class Receiver:
    """Records each POST; fails the first ``failures`` with an error like the transport's."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[tuple[str, dict, dict]] = []
        self.failures = failures

    def __call__(self, url, payload, headers, timeout_s):
        self.calls.append((url, payload, dict(headers)))
        if len(self.calls) <= self.failures:
            raise RetryableStepError("HTTP 503 from the receiver", details={"status": 503})
        return Reply(204)


@pytest.fixture
def world(any_redis):
    settings = Settings(
        http_agent_allowed_hosts="127.0.0.1",
        webhook_backoff_s=2.0,
        webhook_retry_s=60,
        step_max_attempts=1,
    )
    return build_world(any_redis, settings, prefix=settings.key_prefix)


def submit(world, **fields):
    body = {"goal": "g", "plan": PLAN, **fields}
    return world.engine.submit(OrchestrateRequest.model_validate(body)).session_id


def finish(world, sid, ok=True):
    agent = world.sessions.step_record(sid, "s")["agentId"]
    run = world.lifecycle.begin(sid, "s", agent)
    assert isinstance(run, StepRun)
    if ok:
        world.lifecycle.succeed(run, StepResult({"answer": 42}))
    else:
        world.lifecycle.fail(run, PermanentStepError("no"))


def test_an_ended_session_is_delivered_once_with_its_summary(world):
    receiver = Receiver()
    hooks = Webhooks(world.engine.context, receiver)
    sid = submit(world, callbackUrl=HOOK)
    assert hooks.run_once() == 0  # nothing until it ends
    finish(world, sid)
    assert hooks.run_once() == 1
    assert hooks.run_once() == 0  # delivered: never again
    [(url, payload, headers)] = receiver.calls
    assert url == HOOK
    assert payload["type"] == "session.finished"
    session = payload["session"]
    assert session["sessionId"] == sid and session["status"] == "completed"
    assert session["results"] == {f"{sid}.s": {"answer": 42}} and "plan" not in session
    assert headers["X-Meowstik-Delivery"] == payload["deliveryId"]
    assert headers["X-Meowstik-Event"] == "session.finished"
    listed = world.engine.webhooks.deliveries(sid)
    assert listed["callbackUrl"] == HOOK and listed["pending"] == []
    [attempt] = listed["deliveries"]
    assert attempt["status"] == "delivered" and attempt["httpStatus"] == 204
    assert attempt["attempt"] == 1 and attempt["deliveryId"] == payload["deliveryId"]


def test_a_failing_receiver_gets_it_again_after_a_backoff_until_it_succeeds(world):
    receiver = Receiver(failures=2)
    hooks = Webhooks(world.engine.context, receiver)
    sid = submit(world, callbackUrl=HOOK)
    finish(world, sid, ok=False)
    assert hooks.run_once() == 1
    assert hooks.run_once() == 0  # not due before its backoff (2 s)
    world.clock.advance(2.0)
    assert hooks.run_once() == 1
    world.clock.advance(3.9)
    assert hooks.run_once() == 0  # the second pause is 4 s
    world.clock.advance(0.1)
    assert hooks.run_once() == 1
    world.clock.advance(600)
    assert hooks.run_once() == 0
    assert len(receiver.calls) == 3
    assert len({payload["deliveryId"] for _, payload, _ in receiver.calls}) == 1
    assert receiver.calls[0][1]["session"]["status"] == "failed"
    attempts = world.engine.webhooks.deliveries(sid)["deliveries"]
    assert [(a["attempt"], a["status"]) for a in attempts] == [
        (1, "failed"),
        (2, "failed"),
        (3, "delivered"),
    ]
    assert attempts[0]["httpStatus"] == 503 and "503" in attempts[0]["error"]
    assert attempts[0]["nextAttemptAt"] is not None


def test_a_receiver_that_never_answers_is_abandoned_after_the_retry_window(world):
    receiver = Receiver(failures=10**6)
    hooks = Webhooks(world.engine.context, receiver)
    sid = submit(world, callbackUrl=HOOK)
    world.engine.cancel(sid)  # cancelling ends it too
    made = 0
    for _ in range(50):
        made += hooks.run_once()
        world.clock.advance(300)
    attempts = world.engine.webhooks.deliveries(sid)["deliveries"]
    assert attempts[-1]["status"] == "abandoned" and made == len(attempts) == len(receiver.calls)
    assert all(a["status"] == "failed" for a in attempts[:-1])
    assert receiver.calls[0][1]["session"]["status"] == "cancelled"


def test_sessions_without_a_callback_deliver_nothing_and_two_workers_never_both_deliver(world):
    receiver = Receiver()
    first, second = (
        Webhooks(world.engine.context, receiver),
        Webhooks(world.engine.context, receiver),
    )
    finish(world, submit(world))
    assert first.run_once() == 0
    sid = submit(world, callbackUrl=HOOK)
    finish(world, sid)
    [entry] = first.store.due(world.now_ms())
    assert first.store.claim(entry, world.now_ms(), 40_000)
    assert not second.store.claim(entry, world.now_ms(), 40_000)  # held by the first
    first.deliver(entry)
    assert second.run_once() == 0 and len(receiver.calls) == 1
    assert delivery_id(entry) == receiver.calls[0][1]["deliveryId"]


def test_a_refused_callback_url_is_a_422_naming_it(world, any_redis):
    for url in ("http://169.254.169.254/latest", "ftp://127.0.0.1/x", "http://elsewhere.example/"):
        with pytest.raises(CallbackNotAllowedError) as caught:
            submit(world, callbackUrl=url)
        assert caught.value.details["errors"][0]["location"] == "body.callbackUrl"
    settings = world.engine.settings
    client = create_app(
        settings, redis_client=any_redis, dispatcher=RecordingDispatcher()
    ).test_client()
    response = client.post(
        "/api/orchestrator/orchestrate",
        json={"goal": "g", "plan": PLAN, "callbackUrl": "http://10.0.0.1/hook"},
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "callback_not_allowed"
    missing = client.get("/api/orchestrator/sessions/orch-1-nope/deliveries")
    assert missing.status_code == 404
    sid = submit(world, callbackUrl=HOOK)
    listed = client.get(f"/api/orchestrator/sessions/{sid}/deliveries").get_json()
    assert listed == {
        "sessionId": sid,
        "callbackUrl": HOOK,
        "deliveries": [],
        "count": 0,
        "pending": [],
    }


def test_a_users_default_callback_applies_when_the_session_names_none(any_redis):
    settings = Settings(
        http_agent_allowed_hosts="127.0.0.1",
        user_callbacks={"alice": "http://127.0.0.1:9/alice", "*": "http://127.0.0.1:9/ops"},
    )
    world = build_world(any_redis, settings, prefix=settings.key_prefix)
    alice = submit(world, userId="alice")
    bob = submit(world, userId="bob")
    own = submit(world, userId="alice", callbackUrl="http://127.0.0.1:9/mine")
    assert world.engine.snapshot(alice).callback_url == "http://127.0.0.1:9/alice"
    assert world.engine.snapshot(bob).callback_url == "http://127.0.0.1:9/ops"
    assert world.engine.snapshot(own).callback_url == "http://127.0.0.1:9/mine"
    broken = Settings(user_callbacks={"*": "http://169.254.169.254/"})
    world = build_world(any_redis, broken, prefix="other")
    with pytest.raises(CallbackNotAllowedError) as caught:
        submit(world)
    assert caught.value.details["errors"][0]["location"] == "settings.MEOWSTIK_USER_CALLBACKS"
    assert caught.value.message.startswith("MEOWSTIK_USER_CALLBACKS's webhook")
