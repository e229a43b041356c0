"""OpenTelemetry tracing: one trace per session, off unless MEOWSTIK_TRACING=true.

The API's request span (``POST /api/orchestrator/orchestrate``, api/tracing.py) is a session's
root, or the child of the caller's W3C ``traceparent``. Submit stores that span's context in the
session hash (``traceparent``, ``tracestate``: ``records.session_fields``), and every step run,
in whichever worker process and however its message came (at submit, released by another step's
completion, retried, recovered, redelivered), is a span whose parent is that stored context
(workers/tracing.py). Step messages and HTTP agent requests carry their sender's context as W3C
headers: a step span links to its message's sender when that is not the session's span.

Configuration is OpenTelemetry's own: the exporters named by OTEL_TRACES_EXPORTER (``otlp``, the
default, over OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL, http/protobuf
unless one says grpc; ``console``; ``none``; or any exporter installed under the
``opentelemetry_traces_exporter`` entry points), and every other OTEL_* variable the SDK reads
(OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, OTEL_BSP_*,
OTEL_EXPORTER_OTLP_*). OTEL_SDK_DISABLED=true keeps tracing off.

Cost when off: nothing here imports opentelemetry; every helper returns at its first line (one
module global read) and no header or session field is written. Without the ``tracing`` extra
installed, MEOWSTIK_TRACING=true logs one warning and tracing stays off.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from orchestrator.core.errors import ConfigurationError
from orchestrator.core.steps import InputRequired
from orchestrator.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

API_SERVICE = "meowstik-api"
WORKER_SERVICE = "meowstik-worker"
EXPORTER_ENTRY_POINTS = "opentelemetry_traces_exporter"
OTLP_BY_PROTOCOL = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}
FLUSH_TIMEOUT_MS = 5000

Carrier = Mapping[str, str]


class _Tracing:
    """This process's tracer and what goes with it; ``tracer`` is None while tracing is off."""

    tracer: Tracer | None = None
    provider: TracerProvider | None = None
    propagator: TraceContextTextMapPropagator | None = None


_ON = _Tracing()


class Traced:
    """A span as the rest of the code sees it: attributes in, its context out as headers."""

    __slots__ = ("_span",)

    def __init__(self, span: Span) -> None:
        self._span = span

    def set(self, attributes: Mapping[str, Any]) -> None:
        """Set attributes (None values are left out)."""
        self._span.set_attributes({k: v for k, v in attributes.items() if v is not None})

    def fail(self, exc: BaseException) -> None:
        """Record ``exc`` on the span and mark it failed (``error.type``: the class's name)."""
        from opentelemetry.trace import Status, StatusCode

        self._span.set_attribute("error.type", type(exc).__name__)
        self._span.record_exception(exc)
        self._span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500]))

    def failed(self, error_type: str, description: str = "") -> None:
        """Mark the span failed without an exception (a tool's error result, an HTTP 5xx)."""
        from opentelemetry.trace import Status, StatusCode

        self._span.set_attribute("error.type", error_type)
        self._span.set_status(Status(StatusCode.ERROR, description[:500] or error_type))

    def headers(self) -> dict[str, str]:
        """This span's context as W3C headers (``traceparent``, ``tracestate``)."""
        from opentelemetry.trace import set_span_in_context

        carrier: dict[str, str] = {}
        if _ON.propagator is not None:
            _ON.propagator.inject(carrier, context=set_span_in_context(self._span))
        return carrier


class _NotTraced(Traced):
    """What every helper gives while tracing is off: does nothing, adds no header."""

    __slots__ = ()

    def __init__(self) -> None:
        pass

    def set(self, attributes: Mapping[str, Any]) -> None:
        return

    def fail(self, exc: BaseException) -> None:
        return

    def failed(self, error_type: str, description: str = "") -> None:
        return

    def headers(self) -> dict[str, str]:
        return {}


NOT_TRACED: Traced = _NotTraced()
_NOT_TRACED_CONTEXT = nullcontext(NOT_TRACED)  # reusable: nullcontext holds no state


def enabled() -> bool:
    """Whether this process traces."""
    return _ON.tracer is not None


def configure(settings: Settings, service_name: str) -> bool:
    """Turn tracing on for this process when ``settings.tracing`` (MEOWSTIK_TRACING) says so:
    a TracerProvider with the OTEL_* configuration, installed as OpenTelemetry's global one too
    (so an agent's own spans join its step's), or the SDK provider already installed (by
    ``opentelemetry-instrument``). Called once at a process edge (the app factory, the worker's
    start); later calls change nothing.

    Args:
        service_name: ``service.name`` unless OTEL_SERVICE_NAME names one.

    Returns:
        Whether this process traces.

    Raises:
        ConfigurationError: OTEL_TRACES_EXPORTER names an exporter that is not installed, or an
            OTLP protocol other than http/protobuf and grpc.
    """
    if _ON.tracer is not None or not settings.tracing:
        return _ON.tracer is not None
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        log.info("MEOWSTIK_TRACING is on but OTEL_SDK_DISABLED=true: not tracing")
        return False
    provider = _sdk_provider(service_name)
    if provider is None:
        return False
    use(provider)
    return True


def _sdk_provider(service_name: str) -> TracerProvider | None:
    """The global SDK provider, made from the OTEL_* variables unless one is installed; None
    (and a warning) when the SDK is not."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        log.warning(
            "MEOWSTIK_TRACING is on but OpenTelemetry is not installed (%s): not tracing. "
            "Install the tracing extra: pip install 'meowstik-orchestration[tracing]'",
            exc,
        )
        return None
    configured = trace.get_tracer_provider()
    if isinstance(configured, TracerProvider):
        return configured
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    provider = TracerProvider(resource=resource)
    for exporter in _exporters(os.environ.get("OTEL_TRACES_EXPORTER", "otlp")):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def _exporters(names: str) -> list[SpanExporter]:
    """The exporters OTEL_TRACES_EXPORTER names (``otlp`` by the OTLP protocol variables)."""
    from importlib.metadata import entry_points

    exporters = []
    for name in (part.strip() for part in names.split(",")):
        if name in ("", "none"):
            continue
        if name == "otlp":
            protocol = (
                os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf"
            ).strip()
            if protocol not in OTLP_BY_PROTOCOL:
                raise ConfigurationError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL is {protocol!r}; use http/protobuf or grpc."
                )
            name = OTLP_BY_PROTOCOL[protocol]
        found = entry_points(group=EXPORTER_ENTRY_POINTS, name=name)
        if not found:
            installed = sorted(point.name for point in entry_points(group=EXPORTER_ENTRY_POINTS))
            raise ConfigurationError(
                f"OTEL_TRACES_EXPORTER names {name!r}, which is not installed (installed: "
                f"{', '.join(installed) or 'none'}). Install it (the tracing extra has OTLP over "
                "HTTP; opentelemetry-exporter-otlp-proto-grpc adds grpc) or name another."
            )
        exporters.append(next(iter(found)).load()())
    return exporters


def use(provider: TracerProvider) -> None:
    """Trace with ``provider`` from now on: the end of ``configure``, and how tests trace into
    an in-memory exporter without touching OpenTelemetry's global provider."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    _ON.provider = provider
    _ON.propagator = TraceContextTextMapPropagator()
    _ON.tracer = provider.get_tracer("meowstik")


def disable() -> None:
    """Stop tracing in this process (what was recorded is flushed first)."""
    flush()
    _ON.tracer = _ON.provider = _ON.propagator = None


def flush(timeout_ms: int = FLUSH_TIMEOUT_MS) -> None:
    """Export what is buffered now (a process about to exit: a prefork child, a worker)."""
    if _ON.provider is not None:
        _ON.provider.force_flush(timeout_ms)


def carrier() -> dict[str, str]:
    """The current span's context as W3C headers; {} when off or no span is current."""
    if _ON.propagator is None:
        return {}
    headers: dict[str, str] = {}
    _ON.propagator.inject(headers)
    return headers


def annotate(attributes: Mapping[str, Any]) -> None:
    """Set attributes on the current span (nothing when off or no span is current)."""
    if _ON.tracer is None:
        return
    from opentelemetry.trace import get_current_span

    Traced(get_current_span()).set(attributes)


def record_failure(exc: BaseException) -> None:
    """Mark the current span failed with ``exc`` (a step run that failed)."""
    if _ON.tracer is None:
        return
    from opentelemetry.trace import get_current_span

    current = get_current_span()
    if current.is_recording():
        Traced(current).fail(exc)


def span(
    name: str,
    *,
    kind: str = "internal",
    parent: Carrier | None = None,
    links: Sequence[Carrier] = (),
    attributes: Mapping[str, Any] | None = None,
) -> AbstractContextManager[Traced]:
    """A span made current for the block; ``NOT_TRACED`` (and no span) while tracing is off.

    Args:
        kind: internal, server, client, producer or consumer.
        parent: W3C headers of the parent; None: the current span (if any) is the parent.
        links: W3C headers of spans this one is linked to (invalid ones are left out).
        attributes: set at the start (None values are left out).

    An exception leaving the block marks the span failed, except ``InputRequired`` (an agent
    asking an operator), which is recorded as ``meowstik.input_required``.
    """
    if _ON.tracer is None:
        return _NOT_TRACED_CONTEXT
    return _span(name, kind, parent, links, attributes or {})


@contextmanager
def _span(
    name: str,
    kind: str,
    parent: Carrier | None,
    links: Sequence[Carrier],
    attributes: Mapping[str, Any],
) -> Iterator[Traced]:
    from opentelemetry.trace import Link, SpanKind, get_current_span

    tracer, propagator = _ON.tracer, _ON.propagator
    assert tracer is not None and propagator is not None
    context = propagator.extract(parent) if parent is not None else None
    linked = [get_current_span(propagator.extract(carrier)).get_span_context() for carrier in links]
    with tracer.start_as_current_span(
        name,
        context=context,
        kind=SpanKind[kind.upper()],
        attributes={k: v for k, v in attributes.items() if v is not None},
        links=[Link(link) for link in linked if link.is_valid],
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        traced = Traced(current)
        try:
            yield traced
        except InputRequired:
            current.set_attribute("meowstik.input_required", True)
            raise
        except Exception as exc:
            traced.fail(exc)
            raise
