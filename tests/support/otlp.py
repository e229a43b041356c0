"""Tracing in tests: a fake OTLP/HTTP collector on loopback (what processes under test export to,
configured by OTEL_* variables as in production), and the finished spans of either it or the
SDK's in-memory exporter in one shape."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class SpanRecord:
    """One finished span: ids as lowercase hex, as W3C headers write them."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root
    kind: str  # internal, server, client, producer, consumer
    service: str
    attributes: dict[str, Any] = field(default_factory=dict)
    links: tuple[str, ...] = ()  # span ids
    error: bool = False


def records_of(spans: Any) -> list[SpanRecord]:
    """The SDK's ``ReadableSpan`` objects (an InMemorySpanExporter's) as SpanRecords."""
    records = []
    for span in spans:
        context, parent = span.get_span_context(), span.parent
        records.append(
            SpanRecord(
                name=span.name,
                trace_id=f"{context.trace_id:032x}",
                span_id=f"{context.span_id:016x}",
                parent_id=f"{parent.span_id:016x}" if parent is not None else "",
                kind=span.kind.name.lower(),
                service=str(span.resource.attributes.get("service.name", "")),
                attributes=dict(span.attributes or {}),
                links=tuple(f"{link.context.span_id:016x}" for link in span.links),
                error=span.status.status_code.name == "ERROR",
            )
        )
    return records


_KINDS = {0: "internal", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def decode_export(body: bytes) -> list[SpanRecord]:
    """The spans of one OTLP/HTTP protobuf export request."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    records = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                records.append(
                    SpanRecord(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        kind=_KINDS.get(span.kind, "internal"),
                        service=str(resource.get("service.name", "")),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        links=tuple(link.span_id.hex() for link in span.links),
                        error=span.status.code == 2,  # STATUS_CODE_ERROR
                    )
                )
    return records


class OtlpCollector:
    """Receives OTLP/HTTP protobuf exports at ``/v1/traces`` (set OTEL_EXPORTER_OTLP_ENDPOINT
    to ``url``) and keeps every span; ``spans()`` is what arrived so far."""

    def __init__(self) -> None:
        self._spans: list[SpanRecord] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/v1/traces":
                    received = decode_export(body)
                    with collector._lock:
                        collector._spans.extend(received)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def spans(self) -> list[SpanRecord]:
        with self._lock:
            return list(self._spans)

    def __enter__(self) -> OtlpCollector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
