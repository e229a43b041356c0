"""The worker side of tracing (orchestrator/tracing.py): the span of each step run, of each model
call and tool call inside it (OpenTelemetry's GenAI semantic conventions), and of each HTTP
request to an agent, whose W3C headers the agent receives.

A step run's parent is the trace context stored with its session at submit, read when the
message arrives (one HMGET, only while tracing is on): so a step released by a completion in
another worker process, retried, recovered by the reconciler or redelivered still joins the
session's trace under the API's request span. The message's own ``traceparent`` (its sender's
span: the API's request, or the step whose completion released it) becomes a link, or the
parent when the session has none (a message some other Celery client published).

While tracing is off every helper here returns a shared do-nothing context at once, before
reading anything, and adds no header.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from orchestrator import tracing
from orchestrator.core.chat import ModelReply
from orchestrator.core.errors import StoreUnavailableError
from orchestrator.core.records import TRACE_CONTEXT_FIELDS
from orchestrator.core.step_runs import Skip
from orchestrator.core.tools import ToolResult
from orchestrator.settings import Settings

if TYPE_CHECKING:
    from orchestrator.store.sessions import SessionStore

GEN_AI_SYSTEM = "openai"  # every model is spoken to through the openai SDK's wire protocol
_OFF = nullcontext(tracing.NOT_TRACED)  # what the helpers give while tracing is off (reusable)


class _Runtime(Protocol):
    sessions: SessionStore


def trace_worker(settings: Settings) -> bool:
    """Start tracing in a worker (``host_agents``), before its pool forks: the SDK's batch
    processor restarts its thread in each child, and what a child buffered is exported when it
    or the worker shuts down. Returns whether the worker traces."""
    if not tracing.configure(settings, tracing.WORKER_SERVICE):
        return False
    from celery.signals import worker_process_shutdown, worker_shutdown

    worker_process_shutdown.connect(_flush, weak=False)
    worker_shutdown.connect(_flush, weak=False)
    return True


def _flush(**_: object) -> None:
    tracing.flush()


def message_context(request: object) -> dict[str, str]:
    """The W3C headers a step message carries (Celery puts custom headers on its request)."""
    headers = getattr(request, "headers", None) or {}
    return {name: str(headers[name]) for name in TRACE_CONTEXT_FIELDS if headers.get(name)}


def step_span(
    runtime: _Runtime,
    request: object,
    session_id: str,
    step_id: str,
    agent_id: str | None,
) -> AbstractContextManager[tracing.Traced]:
    """The span of one delivery of a step message, around ``WorkerRuntime.execute``: its parent
    the session's stored context (else the message's), linked to the message's sender.

    Args:
        runtime: what reads the session's stored context (``runtime.sessions``).
        request: the Celery task's request (its headers and delivery info).
    """
    if not tracing.enabled():
        return _OFF
    message = message_context(request)
    try:
        stored = runtime.sessions.trace_context(session_id)
    except StoreUnavailableError:  # the run itself will meet the outage and report it
        stored = {}
    parent = stored or message
    sender = message.get("traceparent")
    links = [message] if sender and sender != parent.get("traceparent") else []
    delivery = getattr(request, "delivery_info", None) or {}
    return tracing.span(
        f"step {step_id}",
        kind="consumer",
        parent=parent,
        links=links,
        attributes={
            "meowstik.session.id": session_id,
            "meowstik.step.id": step_id,
            "meowstik.agent.id": agent_id,
            "messaging.system": "celery",
            "messaging.operation.type": "process",
            "messaging.message.id": getattr(request, "id", None),
            "messaging.destination.name": delivery.get("routing_key"),
            "meowstik.delivery.retries": getattr(request, "retries", None),
        },
    )


def note_skip(skip: Skip | None) -> None:
    """Say on the step's span why the delivery did not run the step (duplicate, leased, ...)."""
    if skip is not None:
        tracing.annotate({"meowstik.skip.reason": skip.reason})


class ModelCall:
    """The span of one model call (``chat {model}``); ``reply`` adds what the model answered."""

    def __init__(self, traced: tracing.Traced) -> None:
        self.traced = traced

    def reply(self, reply: ModelReply) -> None:
        usage = reply.usage
        self.traced.set(
            {
                "gen_ai.response.model": reply.model,
                "gen_ai.response.finish_reasons": [reply.finish_reason or "unknown"],
                "gen_ai.usage.input_tokens": usage.prompt_tokens if usage else None,
                "gen_ai.usage.output_tokens": usage.completion_tokens if usage else None,
            }
        )


@contextmanager
def _model_call(attributes: dict[str, Any]) -> Iterator[ModelCall]:
    name = f"chat {attributes['gen_ai.request.model']}"
    with tracing.span(name, kind="client", attributes=attributes) as traced:
        yield ModelCall(traced)


_MODEL_CALL_OFF = nullcontext(ModelCall(tracing.NOT_TRACED))


def model_call(
    base_url: str,
    model: str,
    *,
    endpoint_name: str,
    stream: bool,
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> AbstractContextManager[ModelCall]:
    """The GenAI client span of one chat completion (retries inside it): operation ``chat``,
    the requested and answering model, finish reason and the tokens the server counted."""
    if not tracing.enabled():
        return _MODEL_CALL_OFF
    url = urlsplit(base_url)
    return _model_call(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": GEN_AI_SYSTEM,
            "gen_ai.provider.name": GEN_AI_SYSTEM,
            "gen_ai.request.model": model,
            "gen_ai.request.temperature": temperature,
            "gen_ai.request.max_tokens": max_tokens,
            "server.address": url.hostname,
            "server.port": url.port,
            "meowstik.llm.endpoint": endpoint_name,
            "meowstik.llm.stream": stream,
        }
    )


class ToolCall:
    """The span of one tool call (``execute_tool {name}``); ``result`` marks an error result."""

    def __init__(self, traced: tracing.Traced) -> None:
        self.traced = traced

    def result(self, result: ToolResult) -> None:
        if result.error is not None:
            self.traced.failed(str(result.error.get("type", "tool_error")))


_TOOL_CALL_OFF = nullcontext(ToolCall(tracing.NOT_TRACED))


@contextmanager
def _tool_call(tool_name: str, call: str) -> Iterator[ToolCall]:
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool_name,
        "gen_ai.tool.type": "function",
        "meowstik.tool.call": call,
    }
    with tracing.span(f"execute_tool {tool_name}", attributes=attributes) as traced:
        yield ToolCall(traced)


def tool_call(tool_name: str, call: str) -> AbstractContextManager[ToolCall]:
    """The GenAI span of one tool run (``call`` is its turn, e.g. ``c1|t0``); replayed results
    run nothing and have none."""
    if not tracing.enabled():
        return _TOOL_CALL_OFF
    return _tool_call(tool_name, call)


class HttpRequest:
    """The client span of one HTTP request: ``headers`` are what to send (the caller's, plus
    this span's ``traceparent`` while tracing is on), ``status`` records the answer's code."""

    def __init__(self, traced: tracing.Traced, headers: dict[str, str]) -> None:
        self.traced = traced
        self.headers = headers

    def status(self, code: int) -> None:
        self.traced.set({"http.response.status_code": code})
        if code >= 500:
            self.traced.failed(str(code))


@contextmanager
def _http_request(method: str, url: str, headers: dict[str, str]) -> Iterator[HttpRequest]:
    parts = urlsplit(url)
    attributes = {
        "http.request.method": method,
        "url.full": f"{parts.scheme}://{parts.netloc}{parts.path}",  # no query: keys live there
        "server.address": parts.hostname,
        "server.port": parts.port or (443 if parts.scheme == "https" else 80),
    }
    with tracing.span(method, kind="client", attributes=attributes) as traced:
        yield HttpRequest(traced, {**headers, **traced.headers()})


def http_request(
    method: str, url: str, headers: dict[str, str]
) -> AbstractContextManager[HttpRequest]:
    """The span of one HTTP request (one attempt: each retry is a span of its own)."""
    if not tracing.enabled():
        return nullcontext(HttpRequest(tracing.NOT_TRACED, headers))
    return _http_request(method, url, headers)
