"""The Python SDK (issue 22) against a live cluster (gunicorn API, real workers, real Redis):
submit and wait with typed answers; events that resume after a forced disconnect with no event
lost or repeated; answering an input; cancelling; the registry and plan previews; the API's
errors as typed exceptions; the async client; an idempotent submit retried by the client."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
import redis

from meowstik import (
    AsyncClient,
    Client,
    ConflictError,
    NotFoundError,
    UnprocessableEntityError,
    WaitTimeout,
)
from orchestrator.core.models import RegisteredAgent, SessionSnapshot
from tests.integration.test_events import all_log_ids
from tests.support.cluster import wait_for
from tests.support.plans import step

pytestmark = pytest.mark.integration


@pytest.fixture
def client(cluster):
    with Client(cluster.api_url) as sdk:
        yield sdk


class DropOnce(httpx.BaseTransport):
    """A transport that cuts the first events stream after ``events`` events, as a dropped
    connection does (the client sees a read error mid-body; the server its socket closed)."""

    def __init__(self, events: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.events = events
        self.dropped = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if not request.url.path.endswith("/events") or self.dropped:
            return response
        self.dropped += 1
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=Cut(response, self.events),
            request=request,
        )

    def close(self) -> None:
        self.inner.close()


class Cut(httpx.SyncByteStream):
    def __init__(self, response: httpx.Response, events: int) -> None:
        self.response, self.events = response, events

    def __iter__(self):
        seen = 0
        for chunk in self.response.stream:
            # yield up to the blank line that ends the events'th event, then fail the read
            lines = chunk.split(b"\n\n")
            for part in lines[:-1]:
                yield part + b"\n\n"
                if not part.startswith(b":"):
                    seen += 1
                if seen >= self.events:
                    self.response.close()
                    raise httpx.ReadError("connection dropped by the test")
            if lines[-1]:
                yield lines[-1]

    def close(self) -> None:
        self.response.close()


def test_submit_and_wait_give_typed_snapshots(client):
    plan = {"steps": [step("A", "echo_work"), step("B", "echo_work", "A")]}
    session = client.submit(goal="sdk", plan=plan, context={"topic": "auth"})
    assert isinstance(session.snapshot, SessionSnapshot) and session.status == "executing"
    done = session.wait(timeout_s=60)
    assert done.status.value == "completed" and done.completed_tasks == 2
    assert set(done.results) == {f"{session.id}.A", f"{session.id}.B"}
    assert session.cost.session_id == session.id
    assert "seen_A" in session.state.shared


def test_events_resume_after_a_forced_disconnect_with_nothing_lost_or_repeated(cluster):
    gate = uuid.uuid4().hex
    plan = {
        "steps": [
            step("A", "echo_work"),
            step("G", "gated_work", "A", gate=gate),
            step("E", "echo_work", "G"),
        ]
    }
    transport = DropOnce(events=2)
    http = httpx.Client(transport=transport)
    with Client(cluster.api_url, http=http) as sdk:
        session = sdk.submit(goal="events", plan=plan)
        received = []
        for event in session.events():
            received.append(event)
            if event.type == "step.started" and event.data.get("taskId") == "G":
                redis.Redis.from_url(cluster.redis_url).lpush(f"test:gate:{gate}", "open")
    assert transport.dropped == 1
    ids = [event.id for event in received]
    assert ids == all_log_ids(cluster, session.id)  # every event, once, in order
    assert received[-1].type == "session.finished"
    assert received[-1].data["progress"]["status"] == "completed"


def test_answer_an_input_and_cancel(client):
    asking = client.submit(goal="ask", plan={"steps": [step("Q", "ask_work", question="Go?")]})
    with pytest.raises(WaitTimeout):
        asking.wait(timeout_s=0.1)  # it is waiting for the answer, not ending
    wait_for(
        lambda: asking.refresh().steps["Q"].status.value == "waiting_for_input",
        what="the step to ask",
    )
    answered = asking.answer("Q", {"approved": True})
    assert answered.steps["Q"].status.value != "waiting_for_input"
    assert asking.wait(timeout_s=60).status.value == "completed"
    with pytest.raises(ConflictError) as caught:  # answering again is a typed 409
        asking.answer("Q", True)
    assert caught.value.code in {"step_not_waiting", "session_finished"}
    gate = uuid.uuid4().hex
    held = client.submit(goal="hold", plan={"steps": [step("G", "gated_work", gate=gate)]})
    assert held.cancel().status.value == "cancelled"
    assert held.wait(timeout_s=10).status.value == "cancelled"


def test_retry_a_failed_session_without_running_its_completed_steps_again(cluster, client):
    key = uuid.uuid4().hex
    plan = {
        "steps": [
            step("A", "counted_work", key=f"{key}-A"),
            step("B", "counted_work", "A", key=f"{key}-B", failFirst=True),
            step("C", "counted_work", "B", key=f"{key}-C"),
        ]
    }
    session = client.submit(goal="retry", plan=plan)
    failed = session.wait(timeout_s=60)
    assert failed.status.value == "failed" and failed.steps["C"].status.value != "completed"
    retried = session.retry()
    assert retried.round == 1 and retried.status.value in {"executing", "completed"}
    done = session.wait(timeout_s=60)
    assert done.status.value == "completed" and done.completed_tasks == 3
    calls = redis.Redis.from_url(cluster.redis_url)
    counts = [int(calls.get(f"test:calls:{key}-{s}") or 0) for s in "ABC"]
    assert counts == [1, 2, 1]  # A ran once in all; B failed once by design, then succeeded
    assert done.results[f"{session.id}.A"]["calls"] == 1
    with pytest.raises(ConflictError) as caught:  # a completed session is not retried
        session.retry()
    assert caught.value.code == "session_not_retryable"


def test_errors_are_typed_with_the_apis_code_message_and_details(client):
    with pytest.raises(NotFoundError) as caught:
        client.session("orch-1-deadbeef")
    assert caught.value.code == "session_not_found" and caught.value.status == 404
    with pytest.raises(UnprocessableEntityError) as caught:
        client.submit(goal="x", plan={"steps": [step("S", "no_agent_has_this")]})
    assert caught.value.code == "unroutable_step"
    assert caught.value.details["steps"] == {"S": ["no_agent_has_this"]}
    with pytest.raises(UnprocessableEntityError) as caught:
        client.submit(goal="")
    assert caught.value.details["errors"][0]["location"] == "body.goal"


def test_the_registry_and_plan_previews(client):
    agent_id = f"sdk-{uuid.uuid4().hex[:8]}"
    registered = client.agents.register(
        {
            "id": agent_id,
            "name": "SDK agent",
            "type": "specialist",
            "maxLoad": 2,
            "capabilities": [{"name": "sdk_capability"}],
        }
    )
    assert isinstance(registered, RegisteredAgent) and registered.id == agent_id
    assert agent_id in {a.id for a in client.agents.list()}
    detail = client.agents.get(agent_id)
    assert detail.id == agent_id and set(detail.metrics) == {"1h", "24h", "all"}
    assert client.agents.update(agent_id, max_load=3, priority=2).max_load == 3
    assert client.agents.delete(agent_id).id == agent_id
    with pytest.raises(NotFoundError):
        client.agents.get(agent_id)
    preview = client.plans.preview(goal="p", plan={"steps": [step("A", "echo_work")]})
    assert preview.total_steps == 1


def test_a_submit_retried_by_the_client_makes_one_session(cluster, client):
    key = str(uuid.uuid4())
    plan = {"steps": [step("A", "echo_work")]}
    first = client.submit(goal="once", plan=plan, idempotency_key=key)
    again = client.submit(goal="once", plan=plan, idempotency_key=key)
    assert again.id == first.id
    with pytest.raises(UnprocessableEntityError) as caught:
        client.submit(goal="twice", plan=plan, idempotency_key=key)
    assert caught.value.code == "idempotency_key_reused"


def test_the_async_client(cluster):
    async def run() -> tuple[str, list[str]]:
        async with AsyncClient(cluster.api_url) as sdk:
            session = await sdk.submit(goal="async", plan={"steps": [step("A", "echo_work")]})
            kinds = [event.type async for event in session.events()]
            done = await session.wait(timeout_s=60)
            assert (await session.state).session_id == session.id
            agent_id = f"async-{uuid.uuid4().hex[:8]}"
            body = {"id": agent_id, "name": "A", "type": "specialist",
                    "capabilities": [{"name": "async_capability"}]}  # fmt: skip
            assert (await sdk.agents.register(body)).id == agent_id
            assert (await sdk.agents.delete(agent_id)).id == agent_id
            with pytest.raises(NotFoundError):
                await sdk.agents.get(agent_id)
            return done.status.value, kinds

    status, kinds = asyncio.run(run())
    assert status == "completed"
    assert kinds[0] == "session.created" and kinds[-1] == "session.finished"
