"""Tracing across processes: the API under gunicorn and two worker processes (a prefork one
hosting echo-001, a remote one running HTTP agents) export their spans over OTLP/HTTP to a
collector in the test, configured only by MEOWSTIK_TRACING and OTEL_* variables, as in
production. A session is one trace whose every step run is a child of the API's request span,
however and wherever each step was released, and its HTTP agent receives that trace's
``traceparent``."""

from __future__ import annotations

import pytest
import redis
import requests

from tests.conftest import require
from tests.support.cluster import Cluster, wait_for
from tests.support.http_servers import JsonServer, echo_agent_endpoint
from tests.support.otlp import OtlpCollector, SpanRecord
from tests.support.plans import step

pytestmark = pytest.mark.integration

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
STEPS = {"A", "B", "H", "C"}


def otel_sdk_installed() -> bool:
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
        import opentelemetry.proto  # noqa: F401
        import opentelemetry.sdk  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def collector():
    require(otel_sdk_installed(), "opentelemetry-sdk and the OTLP exporter (the dev extra)")
    with OtlpCollector() as running:
        yield running


@pytest.fixture(scope="module")
def traced_cluster(redis_server, tmp_path_factory, collector):
    redis.Redis.from_url(redis_server.url).flushall()
    running = Cluster(
        redis_server.url,
        tmp_path_factory.mktemp("traced-cluster-logs"),
        {
            "MEOWSTIK_TRACING": "true",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_BSP_SCHEDULE_DELAY": "50",  # ms: export soon after a span ends
            "MEOWSTIK_PLANNER": "rule",
        },
    )
    try:
        running.start_worker("worker", concurrency=2, agents="echo-001")
        running.start_worker("remote", concurrency=4, remote=True)
        running.start_api()
        running.wait_ready({"echo-001"})
        yield running
    finally:
        running.stop()


def register_http_agent(cluster: Cluster, url: str) -> None:
    body = {
        "id": "traced-http-001",
        "name": "Traced HTTP echo",
        "type": "specialist",
        "capabilities": [{"name": "traced_http", "description": "echo over HTTP"}],
        "maxLoad": 2,
        "endpoint": f"{url}/step",
    }
    created = requests.post(f"{cluster.api_url}/api/orchestrator/agents", json=body, timeout=10)
    assert created.status_code == 201, created.text
    wait_for(lambda: cluster.agents()["traced-http-001"]["status"] == "active", 10, what="active")


def session_spans(collector: OtlpCollector, sid: str) -> tuple[SpanRecord, dict[str, SpanRecord]]:
    """The API's request span of session ``sid`` and its step runs' spans by step id, once all
    have arrived (each process exports a batch 50 ms after its spans end)."""

    def arrived() -> tuple[SpanRecord, dict[str, SpanRecord]] | None:
        mine = [s for s in collector.spans() if s.attributes.get("meowstik.session.id") == sid]
        requests_ = [s for s in mine if s.kind == "server"]
        runs = {str(s.attributes["meowstik.step.id"]): s for s in mine if s.kind == "consumer"}
        return (requests_[0], runs) if requests_ and set(runs) == STEPS else None

    return wait_for(arrived, 20, what=f"the spans of session {sid}")


def test_a_session_is_one_trace_from_the_api_through_every_worker_to_its_http_agent(
    traced_cluster, collector
):
    with JsonServer(echo_agent_endpoint) as endpoint:
        # Given an HTTP agent registered over the API, run by the remote worker
        register_http_agent(traced_cluster, endpoint.url)
        # When a caller in a trace of its own submits A -> (B, H -> C): C is released by H's
        # completion in the remote worker, B by A's in the prefork worker
        plan = {
            "steps": [
                step("A", "echo_work"),
                step("B", "echo_work", "A"),
                step("H", "traced_http", "A"),
                step("C", "echo_work", "H"),
            ]
        }
        submitted = requests.post(
            f"{traced_cluster.api_url}/api/orchestrator/orchestrate",
            json={"goal": "traced", "plan": plan},
            headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
            timeout=10,
        )
        assert submitted.status_code == 202, submitted.text
        sid = submitted.json()["sessionId"]
        done = traced_cluster.wait_session(sid)
        assert done["status"] == "completed", done["errors"]
    # Then the API's request span is the caller's child, exported by the API process
    api, runs = session_spans(collector, sid)
    assert (api.name, api.service) == ("POST /api/orchestrator/orchestrate", "meowstik-api")
    assert (api.trace_id, api.parent_id) == (CALLER_TRACE, CALLER_SPAN)
    # And every step run, exported by the workers, is a child of that span in the same trace
    assert {run.service for run in runs.values()} == {"meowstik-worker"}
    assert {run.trace_id for run in runs.values()} == {CALLER_TRACE}
    assert {step_id: run.parent_id for step_id, run in runs.items()} == dict.fromkeys(
        STEPS, api.span_id
    )
    # And C's message came from H's run in the remote worker (a link), yet C's parent is the
    # session's span: the context stored with the session, not the message's sender
    assert runs["C"].links == (runs["H"].span_id,)
    # And the HTTP agent received the trace: the traceparent of the request's client span,
    # whose parent is H's run
    (call,) = [s for s in collector.spans() if s.kind == "client" and s.trace_id == CALLER_TRACE]
    assert (call.name, call.parent_id) == ("POST", runs["H"].span_id)
    _version, trace_id, span_id, _flags = endpoint.request_headers[-1]["traceparent"].split("-")
    assert (trace_id, span_id) == (CALLER_TRACE, call.span_id)
