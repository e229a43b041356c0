"""A loopback server that speaks OpenAI's chat completions wire protocol as the real API does, for
testing clients built on the official SDK (see ../shared/FIELD-NOTES.md, "The OpenAI chat wire
protocol").

``POST /v1/chat/completions`` answers from a script (the last entry repeats):

* a ``WireReply`` as one JSON ``chat.completion``, or, when the request sets ``stream``, as
  ``text/event-stream`` over HTTP/1.1 chunked encoding: ``data: <chunk>\\n\\n`` events of
  ``chat.completion.chunk`` objects (a role chunk, content pieces, each tool call as a first
  fragment with ``id``, ``type``, ``function.name`` and empty arguments followed by argument
  fragments, a finish chunk with an empty delta), then, only when the request sets
  ``stream_options.include_usage``, a last chunk with ``choices: []`` and ``usage`` (every
  earlier chunk then carries ``"usage": null``), then ``data: [DONE]``;
* a ``WireError`` as its status with ``{"error": {"message", "type", "param", "code"}}`` and its
  headers (``rate_limited`` sends ``Retry-After`` and ``x-ratelimit-*`` like OpenAI).

Every request is recorded with its headers and JSON body, so tests assert what the SDK sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT_PATH = "/v1/chat/completions"
FINGERPRINT = "fp_f33640a400"
HOLD_LIMIT_S = 5.0
HANG_UP = object()  # in a chunk sequence: close the connection here


def default_usage() -> dict[str, Any]:
    return {"prompt_tokens": 31, "completion_tokens": 12, "total_tokens": 43}


@dataclass(frozen=True)
class WireCall:
    """A tool call the fake model makes."""

    id: str
    name: str
    arguments: str


@dataclass
class WireReply:
    """A successful answer. ``usage=None`` is a server that never counts tokens."""

    content: str | None = "Hello there, friend."
    tool_calls: list[WireCall] = field(default_factory=list)
    finish_reason: str | None = None  # default: "tool_calls" when calling tools, else "stop"
    usage: dict[str, Any] | None = field(default_factory=default_usage)
    pieces: list[str] | None = None  # how streamed content is cut; default: word by word
    argument_piece_chars: int = 4
    model: str | None = None  # the model named in the reply; default: the requested one
    write_bytes: int | None = None  # cut the event stream into HTTP chunks of this many bytes
    hold_after_first_piece: threading.Event | None = None  # wait for it before streaming on
    hang_up_after_first_piece: bool = False  # close the connection mid-stream

    @property
    def finish(self) -> str:
        return self.finish_reason or ("tool_calls" if self.tool_calls else "stop")

    def content_pieces(self) -> list[str]:
        if self.content is None:
            return []
        if self.pieces is not None:
            return self.pieces
        words = self.content.split(" ")
        return [word if i == 0 else f" {word}" for i, word in enumerate(words)]


@dataclass
class WireError:
    """An error answer in OpenAI's shape."""

    status: int
    message: str
    type: str
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        error = {"message": self.message, "type": self.type, "param": self.param}
        return (json.dumps({"error": {**error, "code": self.code}}, indent=4) + "\n").encode()


def rate_limited(retry_after_s: float = 1) -> WireError:
    seconds = f"{retry_after_s:g}"
    return WireError(
        429,
        "Rate limit reached for gpt-4o-mini in organization org-test on requests per min "
        f"(RPM): Limit 3, Used 3, Requested 1. Please try again in {seconds}s.",
        "requests",
        code="rate_limit_exceeded",
        headers={
            "retry-after": seconds,
            "x-ratelimit-limit-requests": "3",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": f"{seconds}s",
        },
    )


def context_length_exceeded(limit: int = 128000, sent: int = 130512) -> WireError:
    return WireError(
        400,
        f"This model's maximum context length is {limit} tokens. However, your messages "
        f"resulted in {sent} tokens. Please reduce the length of the messages.",
        "invalid_request_error",
        code="context_length_exceeded",
        param="messages",
    )


def server_error() -> WireError:
    return WireError(
        500,
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
    )


def invalid_api_key(shown: str) -> WireError:
    """A 401 that quotes the key, as some compatible servers do in full."""
    return WireError(
        401,
        f"Incorrect API key provided: {shown}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        code="invalid_api_key",
    )


@dataclass(frozen=True)
class WireRequest:
    path: str
    headers: dict[str, str]  # names lowercased
    body: dict[str, Any]


Scripted = WireReply | WireError


class OpenAIWire:
    """The fake API on a free loopback port; ``url`` is its base (``.../v1``)."""

    def __init__(
        self, *script: Scripted, responder: Callable[[WireRequest], Scripted] | None = None
    ) -> None:
        self.script: deque[Scripted] = deque(script or (WireReply(),))
        self.responder = responder  # when set, it answers each request instead of the script
        self.requests: list[WireRequest] = []
        self.held_in_vain = 0  # holds that timed out: the client did not act on a piece
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def answer(self, *script: Scripted) -> None:
        with self._lock:
            self.script = deque(script)

    def __enter__(self) -> OpenAIWire:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def next_answer(self, request: WireRequest) -> Scripted:
        with self._lock:
            self.requests.append(request)
            if self.responder is None:
                return self.script.popleft() if len(self.script) > 1 else self.script[0]
        return self.responder(request)  # outside the lock: a responder may hold its request


def completion(reply: WireReply, model: str, created: int) -> dict[str, Any]:
    """The non-streamed ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in reply.tool_calls
        ]
    message["annotations"] = []
    body: dict[str, Any] = {
        "id": "chatcmpl-wire0001",
        "object": "chat.completion",
        "created": created,
        "model": reply.model or model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish}
        ],
    }
    if reply.usage is not None:
        body["usage"] = reply.usage
    body.update(service_tier="default", system_fingerprint=FINGERPRINT)
    return body


def chunks(reply: WireReply, model: str, created: int, include_usage: bool) -> Iterator[Any]:
    """The ``chat.completion.chunk`` objects of a streamed reply, in order; a threading.Event
    between two of them means: wait for it before sending on; HANG_UP: close the connection."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        body = {
            "id": "chatcmpl-wire0001",
            "object": "chat.completion.chunk",
            "created": created,
            "model": reply.model or model,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            body["usage"] = None
        return body

    first: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
    if reply.content is None:
        first["content"] = None
    yield chunk(first)
    for index, piece in enumerate(reply.content_pieces()):
        yield chunk({"content": piece})
        if index == 0 and reply.hold_after_first_piece is not None:
            yield reply.hold_after_first_piece
        if index == 0 and reply.hang_up_after_first_piece:
            yield HANG_UP
    for index, call in enumerate(reply.tool_calls):
        opening = {"index": index, "id": call.id, "type": "function"}
        yield chunk({"tool_calls": [{**opening, "function": {"name": call.name, "arguments": ""}}]})
        step = reply.argument_piece_chars
        for start in range(0, len(call.arguments), step):
            fragment = call.arguments[start : start + step]
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    yield chunk({}, reply.finish)
    if include_usage and reply.usage is not None:
        yield {**chunk({}), "choices": [], "usage": reply.usage}


def _handler(wire: OpenAIWire) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, as the real API

        def handle(self) -> None:
            try:
                super().handle()
            except ConnectionError:
                return  # the client reset a kept-alive connection: nothing more to serve

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {name.lower(): value for name, value in self.headers.items()}
            body = json.loads(raw) if raw else {}
            if self.path != CHAT_PATH:
                message = f"Invalid URL (POST {self.path})"
                return self._send_error(WireError(404, message, "invalid_request_error"))
            answer = wire.next_answer(WireRequest(self.path, headers, body))
            if isinstance(answer, WireError):
                return self._send_error(answer)
            created = int(time.time())
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return self._send_stream(answer, body["model"], created, include_usage)
            data = (json.dumps(completion(answer, body["model"], created), indent=2)).encode()
            self._send(200, "application/json", data, {})

        def _send_error(self, error: WireError) -> None:
            self._send(error.status, "application/json; charset=utf-8", error.body(), error.headers)

        def _send(self, status: int, content_type: str, data: bytes, headers: dict) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", "req_wire0001")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _send_stream(
            self, reply: WireReply, model: str, created: int, include_usage: bool
        ) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("x-request-id", "req_wire0001")
            self.end_headers()
            try:
                for item in chunks(reply, model, created, include_usage):
                    if isinstance(item, threading.Event):
                        if not item.wait(HOLD_LIMIT_S):
                            wire.held_in_vain += 1  # the client never saw the first piece
                        continue
                    if item is HANG_UP:
                        self.close_connection = True
                        return
                    self._write_event(json.dumps(item, separators=(",", ":")), reply.write_bytes)
                self._write_event("[DONE]", reply.write_bytes)
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                return  # the client hung up mid-stream

        def _write_event(self, data: str, write_bytes: int | None) -> None:
            event = f"data: {data}\n\n".encode()
            size = write_bytes or len(event)
            for start in range(0, len(event), size):
                piece = event[start : start + size]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.flush()

        def log_message(self, *args: object) -> None:
            return

    return Handler
