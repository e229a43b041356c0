"""Schemathesis against the real API: every operation of /openapi.json, positive and negative
inputs, on gunicorn with a Celery worker and its own Redis database.

Checks on every response: no 5xx (not_a_server_error), a documented status code, the documented
content type, the documented body schema, and the documented headers. The API runs with an admin
token (MEOWSTIK_API_TOKENS) and a rate limit no test run reaches; every call sends the token.

The SSE endpoint: fuzzed session ids are unknown (404). The stream of a real session is checked
separately on a finished session, whose stream ends with session.finished; every request also
carries a timeout, so a stream that did not end would fail the test instead of hanging it.
"""

from __future__ import annotations

import secrets

import pytest
import redis
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.openapi import OPERATIONS, build_document
from tests.conftest import require
from tests.support.cluster import Cluster, wait_for

pytestmark = pytest.mark.integration

TOKEN = secrets.token_urlsafe(24)
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
AGENTS = "planner-001,researcher-001,coder-001,reviewer-001"
REDIS_DB = 11  # other integration modules use database 0 of the shared server
REQUEST_TIMEOUT_S = 15
MAX_EXAMPLES = 15
SEEN: dict[str, set[int]] = {}  # operation -> statuses answered (and conforming)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

DOCUMENT = build_document()
schema = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=SchemathesisConfig.from_dict(
        {
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "with-security-parameters": False,
                "database": "none",
            },
            "phases": {"stateful": {"enabled": False}},
        }
    ),
)


def database_url(url: str, db: int) -> str:
    return url.rsplit("/", 1)[0] + f"/{db}"


@pytest.fixture(scope="module")
def api(redis_server, tmp_path_factory):
    """The API and a worker hosting the built-in agents on database REDIS_DB, with one finished
    session (so sessions, tasks, logs and workers have real records to answer with)."""
    url = database_url(redis_server.url, REDIS_DB)
    redis.Redis.from_url(url).flushdb()
    cluster = Cluster(
        url,
        tmp_path_factory.mktemp("schemathesis-logs"),
        {
            "MEOWSTIK_API_TOKENS": f"admin:admin:{TOKEN}",
            "MEOWSTIK_RATE_LIMIT_PER_MINUTE": "1000000",
            "MEOWSTIK_RATE_LIMIT_BURST": "1000000",
            "MEOWSTIK_PLANNER": "rule",
        },
    )
    session = requests.Session()
    session.headers.update(HEADERS)
    try:
        cluster.start_worker(concurrency=2, agents=AGENTS)
        cluster.start_api()

        def ready() -> bool:
            cluster.check_alive()
            try:
                answer = session.get(f"{cluster.api_url}/api/orchestrator/agents", timeout=2)
            except requests.RequestException:
                return False
            if answer.status_code != 200:
                return False
            active = {a["id"] for a in answer.json()["agents"] if a["status"] == "active"}
            return set(AGENTS.split(",")) <= active

        wait_for(ready, 60, interval_s=0.1, what="API and agents ready")
        submitted = session.post(
            f"{cluster.api_url}/api/orchestrator/orchestrate",
            json={"goal": "Research and summarise owls", "userId": "fuzz"},
            timeout=10,
        )
        assert submitted.status_code == 202, submitted.text
        session_id = submitted.json()["sessionId"]

        def finished() -> bool:
            cluster.check_alive()
            answer = session.get(
                f"{cluster.api_url}/api/orchestrator/sessions/{session_id}", timeout=5
            )
            return answer.json()["status"] in ("completed", "failed", "cancelled")

        wait_for(finished, 60, interval_s=0.2, what=f"session {session_id} finished")
        cluster.finished_session = session_id
        yield cluster
    finally:
        session.close()
        cluster.stop()


@pytest.fixture(scope="module")
def http(api):
    with requests.Session() as session:
        yield session


def test_the_served_document_is_the_one_being_fuzzed(api, http):
    served = http.get(f"{api.api_url}/openapi.json", timeout=10)
    assert served.status_code == 200 and served.json() == DOCUMENT
    assert sum(len(item) for item in DOCUMENT["paths"].values()) == len(OPERATIONS)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_conforms(case, api, http):
    response = case.call_and_validate(
        base_url=api.api_url,
        session=http,
        headers=HEADERS,
        checks=CHECKS,
        timeout=REQUEST_TIMEOUT_S,
    )
    operation = f"{case.operation.method.upper()} {case.operation.path}"
    SEEN.setdefault(operation, set()).add(response.status_code)


def test_the_fuzzing_reached_every_operation_and_their_success_answers():
    """Runs after the fuzzing above (file order): every operation was called, and the generated
    inputs got past validation to a 2xx or 3xx answer wherever one is reachable with random
    data (not where it needs an existing id or a valid token)."""
    require(bool(SEEN), "runs after test_every_operation_conforms in the same session")
    operations = {
        f"{method.upper()} {path}" for path, item in DOCUMENT["paths"].items() for method in item
    }
    assert set(SEEN) == operations
    succeeded = {op for op, statuses in SEEN.items() if any(s < 400 for s in statuses)}
    for expected in (
        "POST /api/orchestrator/orchestrate",
        "POST /api/orchestrator/plans",
        "GET /api/orchestrator/sessions",
        "GET /api/orchestrator/logs",
        "GET /api/tasks",
        "GET /api/workers",
        "GET /metrics",
        "GET /",
    ):
        assert expected in succeeded, (expected, SEEN[expected])


def test_the_event_stream_of_a_real_session_conforms_and_ends(api, http):
    operation = schema["/api/orchestrator/sessions/{session_id}/events"]["GET"]
    case = operation.Case(path_parameters={"session_id": api.finished_session})
    response = case.call_and_validate(
        base_url=api.api_url, session=http, headers=HEADERS, checks=CHECKS, timeout=30
    )
    assert response.status_code == 200
    assert "event: session.finished" in response.text
