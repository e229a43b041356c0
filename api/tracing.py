"""The API side of tracing (orchestrator/tracing.py): every request is a server span, the child of
the caller's W3C ``traceparent`` when it sends one. The span of ``POST .../orchestrate`` is the
session's: submit stores its context with the session, and every step run's span is its child.
Installed by ``create_app`` only while tracing is on; otherwise no hook runs at all."""

from __future__ import annotations

from contextlib import AbstractContextManager

from flask import Flask, Response, g, request

from orchestrator import tracing
from orchestrator.core.records import TRACE_CONTEXT_FIELDS

_SPAN = "meowstik_trace_span"  # where the request's span waits in flask.g for the teardown


def install(app: Flask) -> None:
    """Trace ``app``'s requests when this process traces (``tracing.configure`` ran first)."""
    if not tracing.enabled():
        return
    app.before_request(_start)
    app.after_request(_status)
    app.teardown_request(_end)


def _start() -> None:
    route = request.url_rule.rule if request.url_rule is not None else None
    parent = {
        name: request.headers[name] for name in TRACE_CONTEXT_FIELDS if name in request.headers
    }
    span = tracing.span(
        f"{request.method} {route}" if route else request.method,
        kind="server",
        parent=parent,
        attributes={
            "http.request.method": request.method,
            "http.route": route,
            "url.path": request.path,
            "url.scheme": request.scheme,
            "user_agent.original": request.user_agent.string or None,
        },
    )
    traced = span.__enter__()
    setattr(g, _SPAN, (span, traced))


def _status(response: Response) -> Response:
    held = getattr(g, _SPAN, None)
    if held is not None:
        held[1].set({"http.response.status_code": response.status_code})
        if response.status_code >= 500:
            held[1].failed(str(response.status_code))
    return response


def _end(exc: BaseException | None) -> None:
    held: tuple[AbstractContextManager[tracing.Traced], tracing.Traced] | None = g.pop(_SPAN, None)
    if held is None:
        return
    span = held[0]
    if exc is None:
        span.__exit__(None, None, None)
    else:
        span.__exit__(type(exc), exc, exc.__traceback__)
