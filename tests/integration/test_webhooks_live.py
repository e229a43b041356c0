"""Webhooks and signed agent calls on a live cluster (issue 22): a receiver gets one signed
delivery per finished session and verifies it with the SDK's helper; a receiver that fails twice
then succeeds gets it on the third try, and GET .../deliveries shows the three attempts; an HTTP
agent that refuses unsigned calls runs its step."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from meowstik import SIGNATURE_HEADER, Client, verify_signature
from tests.integration.conftest import SIGNING_SECRET
from tests.support.cluster import wait_for
from tests.support.plans import step

pytestmark = pytest.mark.integration


class Receiver:
    """A webhook receiver (and HTTP agent) on loopback that verifies every request's signature
    and answers 503 to the first ``failures`` of them."""

    def __init__(self, failures: int = 0) -> None:
        self.received: list[dict] = []
        self.verified: list[bool] = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ok = verify_signature(body, self.headers.get(SIGNATURE_HEADER), SIGNING_SECRET)
                receiver.verified.append(ok)
                receiver.received.append(
                    {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
                )
                if not ok:
                    status, reply = 401, {"error": "bad signature"}
                elif len(receiver.received) <= receiver.failures:
                    status, reply = 503, {"error": "try later"}
                elif self.path.startswith("/agent"):
                    status, reply = 200, {"output": {"signed": True}}
                else:
                    status, reply = 204, None
                data = b"" if reply is None else json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(failures: int = 0) -> Receiver:
        made.append(Receiver(failures))
        return made[-1]

    yield make
    for each in made:
        each.close()


def test_one_signed_delivery_per_finished_session(cluster, receiver):
    hooks = receiver()
    with Client(cluster.api_url) as client:
        sessions = [
            client.submit(
                goal=f"hook {i}",
                plan={"steps": [step("A", "echo_work")]},
                callback_url=hooks.url(f"/hooks/{i}"),
            )
            for i in range(3)
        ]
        for session in sessions:
            session.wait(timeout_s=60)
    wait_for(lambda: len(hooks.received) >= 3, what="three deliveries")
    assert all(hooks.verified)
    by_session = {r["body"]["session"]["sessionId"]: r for r in hooks.received}
    assert set(by_session) == {s.id for s in sessions}
    for session in sessions:
        delivery = by_session[session.id]
        assert delivery["body"]["session"]["status"] == "completed"
        assert delivery["headers"]["X-Meowstik-Event"] == "session.finished"
    # nothing more arrives: each ending is delivered once (the deliverer polls every 0.5 s)
    listed = [
        requests.get(
            f"{cluster.api_url}/api/orchestrator/sessions/{s.id}/deliveries", timeout=10
        ).json()
        for s in sessions
    ]
    assert [d["count"] for d in listed] == [1, 1, 1] and len(hooks.received) == 3


def test_a_receiver_that_fails_twice_gets_it_on_the_third_try(cluster, receiver):
    hooks = receiver(failures=2)
    with Client(cluster.api_url) as client:
        session = client.submit(
            goal="retry hook",
            plan={"steps": [step("A", "echo_work")]},
            callback_url=hooks.url("/hooks/flaky"),
        )
        session.wait(timeout_s=60)
    url = f"{cluster.api_url}/api/orchestrator/sessions/{session.id}/deliveries"
    listed = wait_for(
        lambda: (d := requests.get(url, timeout=10).json())["count"] >= 3 and d,
        what="three attempts",
    )
    assert [(a["attempt"], a["status"]) for a in listed["deliveries"]] == [
        (1, "failed"),
        (2, "failed"),
        (3, "delivered"),
    ]
    assert listed["pending"] == [] and len(hooks.received) == 3 and all(hooks.verified)
    assert len({r["headers"]["X-Meowstik-Delivery"] for r in hooks.received}) == 1


def test_an_http_agent_verifies_its_calls(cluster, receiver):
    agent = receiver()
    agent_id = f"signed-{uuid.uuid4().hex[:8]}"
    with Client(cluster.api_url) as client:
        client.agents.register(
            {
                "id": agent_id,
                "name": "Signed",
                "type": "specialist",
                "maxLoad": 2,
                "capabilities": [{"name": f"cap_{agent_id.replace('-', '_')}"}],
                "endpoint": agent.url("/agent"),
            }
        )
        cap = f"cap_{agent_id.replace('-', '_')}"
        wait_for(lambda: client.agents.get(agent_id).status.value == "active", what="hosted")
        done = client.submit(goal="signed", plan={"steps": [step("S", cap)]}).wait(60)
    assert done.status.value == "completed", done.errors
    assert agent.verified == [True]
    assert done.results[f"{done.session_id}.S"] == {"signed": True}
