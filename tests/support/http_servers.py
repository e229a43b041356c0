"""Small real HTTP servers on 127.0.0.1 for tests: an HTTP agent endpoint and a fake
OpenAI-compatible chat API. Each records the JSON bodies it received."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[str, dict[str, Any]], tuple[int, dict[str, Any]]]


class JsonServer:
    """POST handler: ``respond(path, body) -> (status, json)``; every request is recorded."""

    def __init__(self, respond: Responder) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append((self.path, body))
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
    }


def fake_chat_completions(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """An OpenAI-compatible chat endpoint whose model answers with a JSON object."""
    if not path.endswith("/chat/completions"):
        return 404, {"error": {"message": f"no route {path}"}}
    context = json.loads(body["messages"][-1]["content"])
    answer = {
        "output": {
            "answeredBy": body["model"],
            "stepId": context["stepId"],
            "capabilities": context["step"]["requiredCapabilities"],
        }
    }
    return 200, {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": json.dumps(answer)},
            }
        ],
    }
