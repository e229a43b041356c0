"""Small real HTTP servers on 127.0.0.1 for tests: an HTTP agent endpoint and a fake
OpenAI-compatible chat API. Each records the JSON bodies it received."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.openai_wire import WireReply, completion

Responder = Callable[[str, dict[str, Any]], tuple[int, dict[str, Any]]]


class JsonServer:
    """POST handler: ``respond(path, body) -> (status, json)``; every request (and its headers)
    is recorded."""

    def __init__(self, respond: Responder) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.request_headers: list[dict[str, str]] = []  # of each request, names lowercased
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append((self.path, body))
                server.request_headers.append({k.lower(): v for k, v in self.headers.items()})
                status, reply = respond(self.path, body)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> JsonServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def echo_agent_endpoint(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """An HTTP agent: answers with what it was given."""
    return 200, {
        "output": {
            "handledBy": "http-endpoint",
            "stepId": body["stepId"],
            "goal": body["goal"],
            "dependencies": sorted(body["dependencies"]),
        },
        "stateUpdates": {"httpSeen": True},
        # what it spent by itself, as an agent calling its own model reports it
        "usage": {"promptTokens": 120, "completionTokens": 30, "model": "its-own-model"},
        "costUsd": "0.0025",
    }


# What the fake model answers the planner, chosen by a marker in the goal; "-once" scripts are
# wrong on the first reply and right when sent back for repair.
LLM_PLAN = {
    "steps": [
        {"id": "gather", "title": "Gather", "requiredCapabilities": ["echo_work"]},
        {
            "id": "summarise",
            "title": "Summarise",
            "requiredCapabilities": ["echo_work"],
            "dependsOn": ["gather"],
        },
    ]
}
LLM_CYCLIC_PLAN = {
    "steps": [
        {"id": "a", "title": "A", "requiredCapabilities": ["echo_work"], "dependsOn": ["b"]},
        {"id": "b", "title": "B", "requiredCapabilities": ["echo_work"], "dependsOn": ["a"]},
    ]
}
LLM_UNROUTABLE_PLAN = {"steps": [{"id": "a", "title": "A", "requiredCapabilities": ["teleport"]}]}
PLANNER_SCRIPTS = {
    "[plan:valid]": (LLM_PLAN,),
    "[plan:malformed-once]": ("Sure! First I would gather, then summarise.", LLM_PLAN),
    "[plan:unroutable-once]": (LLM_UNROUTABLE_PLAN, LLM_PLAN),
    "[plan:cyclic]": (LLM_CYCLIC_PLAN,),
}


def planner_reply(messages: list[dict[str, Any]]) -> str:
    """The fake model as a planner: the script named in the goal, by attempt (1 + repairs)."""
    goal = messages[1]["content"].splitlines()[0]
    script = next((s for marker, s in PLANNER_SCRIPTS.items() if marker in goal), (LLM_PLAN,))
    attempt = (len(messages) - 2) // 2
    reply = script[min(attempt, len(script) - 1)]
    return reply if isinstance(reply, str) else json.dumps(reply)


def chat_reply(model: str, content: str) -> dict[str, Any]:
    """A ``chat.completion`` in the shape OpenAI sends (tests/support/openai_wire.py speaks the
    whole protocol: streams, tool calls, errors)."""
    return completion(WireReply(content=content), model, int(time.time()))


BUILTIN_ROLE_MARK = "valid against this JSON Schema"  # in the built-in agents' role prompts


def builtin_answer(body: dict[str, Any]) -> str:
    """An answer every built-in role's schema accepts (workers/agents/builtin/modelled.py),
    naming the step and the model that answered."""
    step = json.loads(body["messages"][1]["content"])["step"]
    return json.dumps(
        {
            "summary": f"{step['id']} answered by {body['model']}",
            "verdict": "approve",
            "subPlan": False,
            "steps": [],
            "findings": [],
            "openQuestions": [],
            "files": [],
            "notes": [],
            "issues": [],
        }
    )


def fake_chat_completions(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """An OpenAI-compatible chat endpoint. As an agent's model it answers with a JSON object
    naming the step; as the planner's, with the plan the goal's marker asks for."""
    if not path.endswith("/chat/completions"):
        return 404, {"error": {"message": f"no route {path}"}}
    if body["messages"][0]["content"].startswith("You are the planner"):
        return 200, chat_reply(body["model"], planner_reply(body["messages"]))
    if BUILTIN_ROLE_MARK in body["messages"][0]["content"]:
        return 200, chat_reply(body["model"], builtin_answer(body))
    context = json.loads(body["messages"][-1]["content"])
    answer = {
        "output": {
            "answeredBy": body["model"],
            "stepId": context["stepId"],
            "capabilities": context["step"]["requiredCapabilities"],
        }
    }
    return 200, chat_reply(body["model"], json.dumps(answer))


@contextmanager
def scripted_api(handler: type[BaseHTTPRequestHandler], state: Any) -> Iterator[Any]:
    """Serve handler on a free loopback port with ``server.api = state``; sets ``state.url``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.api = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
