"""The slow HTTP agent of `make chaos`: an endpoint served by the chaos process itself, which
answers each step after the delay its parameters ask for (``delayS``).

It knows which requests are in flight and from which local port, so the driver can tell which
remote worker is running an HTTP step right now, and it counts the requests per step (a step
asked twice was executed twice).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tools.chaos_agents import HTTP_AGENT, HTTP_CAPABILITY, chaos_output

HTTP_MAX_LOAD = 4


@dataclass(frozen=True)
class InFlight:
    """A request being answered: the caller's local port, the step and its attempt."""

    client_port: int
    session_id: str
    step_id: str
    attempt: int
    started_at: float


class SlowHttpAgent:
    """A ThreadingHTTPServer on 127.0.0.1 answering POST /step after ``delayS`` seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self.in_flight: dict[int, InFlight] = {}
        self.requests: Counter[tuple[str, str]] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                status, reply = server.answer(self.client_address[1], body)
                data = json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the caller died (a killed worker): nobody to answer

            def log_message(self, *args: object) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/step"

    def registration(self) -> dict[str, Any]:
        """The POST /api/orchestrator/agents body that registers this endpoint."""
        return {
            "id": HTTP_AGENT,
            "name": "Chaos slow HTTP agent",
            "type": "chaos",
            "description": "Answers each step after its delayS, from the chaos process",
            "capabilities": [{"name": HTTP_CAPABILITY, "description": "slow work over HTTP"}],
            "maxLoad": HTTP_MAX_LOAD,
            "endpoint": self.url,
        }

    def answer(self, client_port: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        session_id, step_id = str(body.get("sessionId")), str(body.get("stepId"))
        attempt = int(body.get("attempt") or 0)
        number = next(self._ids)
        with self._lock:
            self.requests[(session_id, step_id)] += 1
            self.in_flight[number] = InFlight(
                client_port, session_id, step_id, attempt, time.monotonic()
            )
        try:
            time.sleep(float((body.get("step") or {}).get("parameters", {}).get("delayS", 0.5)))
        finally:
            with self._lock:
                del self.in_flight[number]
        output = chaos_output(
            session_id, step_id, str(body.get("agentId")), attempt, body.get("dependencies") or {}
        )
        return 200, {"output": output, "stateUpdates": {f"done_{step_id}": attempt}}

    def running(self) -> list[InFlight]:
        with self._lock:
            return list(self.in_flight.values())

    def start(self) -> SlowHttpAgent:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
