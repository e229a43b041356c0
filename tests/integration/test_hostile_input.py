"""Hostile input against a live cluster (real gunicorn API, real workers, real Redis, open mode).

Every case sends one bad request and asserts three things: the status, the JSON error (its code,
and a message naming what was wrong and where), and that nothing happened: a snapshot of Redis
taken before and after is equal. The snapshot holds every key name (SCAN), the type and size of
every key (LLEN of lists, SCARD/ZCARD/HLEN/XLEN of the rest), which also covers the set of
Celery queues (kombu's ``_kombu.binding.<queue>`` sets and the queue lists themselves, all under
``Keys.broker``) and the ``waiting:<capability>`` lists.

An idle cluster leaves all of that alone (worker heartbeats rewrite the values of their
``worker:<name>`` hashes and ``executor:remote:aliveUntil``, never their names or sizes), except
two kombu keys that come and go by themselves, which the snapshot leaves out:
``unacked_mutex`` (a lock kombu takes for a moment while it restores unacknowledged messages,
every MEOWSTIK_UNACKED_RESTORE_INTERVAL_S) and ``*.reply.celery.pidbox`` (reply queues of Celery
remote-control broadcasts, which only revocations send here).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests

from orchestrator.settings import Settings
from orchestrator.store.keys import Keys
from tests.support.cluster import wait_for
from tests.support.plans import step

pytestmark = pytest.mark.integration

DEFAULTS = {name: field.default for name, field in Settings.model_fields.items()}
MAX_BODY = DEFAULTS["max_body_bytes"]  # the cluster runs with the defaults
ORCHESTRATE = "/api/orchestrator/orchestrate"
AGENTS = "/api/orchestrator/agents"
JSON = "application/json"
BROKER = Keys()  # kombu's keys, under the cluster's (default) prefix
VOLATILE_KEYS = {BROKER.broker("unacked_mutex")}
VOLATILE_SUFFIXES = (".reply.celery.pidbox",)
# workers' heartbeat records expire when a heartbeat is late (a loaded machine) and come back
# with the next one: not a side effect of any request
VOLATILE_PREFIXES = ("meowstik:worker:",)
_SIZE = {"list": "llen", "set": "scard", "zset": "zcard", "hash": "hlen", "stream": "xlen"}


def redis_snapshot(client: redis.Redis) -> dict[str, tuple[str, int | None]]:
    """Every key but the volatile ones -> (type, size)."""
    names = [
        key.decode()
        for key in client.scan_iter(count=1000)
        if key.decode() not in VOLATILE_KEYS
        and not key.decode().endswith(VOLATILE_SUFFIXES)
        and not key.decode().startswith(VOLATILE_PREFIXES)
    ]
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.type(name)
        types = [t.decode() for t in pipe.execute()]
    with client.pipeline(transaction=False) as pipe:
        for name, kind in zip(names, types, strict=True):
            if kind in _SIZE:
                getattr(pipe, _SIZE[kind])(name)
            else:
                pipe.exists(name)
        sizes = pipe.execute()
    return {
        name: (kind, size if kind in _SIZE else None)
        for name, kind, size in zip(names, types, sizes, strict=True)
        if kind != "none"  # expired between SCAN and TYPE
    }


def queues_and_waiting(snapshot: dict[str, tuple[str, int | None]]) -> set[str]:
    return {
        name
        for name in snapshot
        if name.startswith((BROKER.broker("_kombu.binding."), BROKER.broker("cap.")))
        or ":waiting:" in name
    }


@pytest.fixture(scope="module")
def redis_client(cluster) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(cluster.redis_url)
    yield client
    client.close()


@pytest.fixture
def unchanged(cluster, redis_client):
    """Asserts at teardown that Redis is as the test found it (and the workers still run)."""
    before = redis_snapshot(redis_client)
    yield before
    cluster.check_alive()
    after = redis_snapshot(redis_client)
    added, removed = sorted(set(after) - set(before)), sorted(set(before) - set(after))
    resized = {k: (before[k], after[k]) for k in set(before) & set(after) if before[k] != after[k]}
    assert not added and not removed and not resized, (
        f"side effects: new keys {added}, removed keys {removed}, changed sizes {resized}"
    )
    assert queues_and_waiting(after) == queues_and_waiting(before)


def send(cluster, method: str, path: str, data: Any, content_type: str | None = JSON, **kw):
    headers = {"Content-Type": content_type} if content_type else {}
    if isinstance(data, str):
        data = data.encode()
    return requests.request(
        method, cluster.api_url + path, data=data, headers=headers, timeout=30, **kw
    )


def assert_error(response: requests.Response, status: int, code: str, *named: str) -> dict:
    """The JSON error shape, its status and code, and a message that contains ``named``."""
    assert response.status_code == status, response.text[:2000]
    assert response.headers["Content-Type"].startswith(JSON)
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    for fragment in named:
        assert fragment in error["message"], (fragment, error["message"])
    return error


def plan_body(*steps: dict, **extra: Any) -> dict:
    return {"goal": "hostile", "plan": {"steps": list(steps)}, **extra}


def nested(depth: int) -> str:
    return '{"goal": "deep", "metadata": {"a": ' + "[" * depth + "]" * depth + "}}"


# --- the body itself: size, encoding, syntax, numbers -------------------------------------------

RAW_BODIES = [
    pytest.param(
        '{"goal": "' + "x" * MAX_BODY + '"}', JSON, 413, "payload_too_large",
        ["MEOWSTIK_MAX_BODY_BYTES"], id="over-max-body-bytes",
    ),
    pytest.param(nested(10_000), JSON, 400, "malformed_json", ["nests"], id="nested-10k"),
    pytest.param(nested(100), JSON, 400, "too_deeply_nested", ["64 levels"], id="nested-100"),
    pytest.param(
        '{"goal": "g", "metadata": {"a": NaN}}', JSON, 400, "malformed_json", ["NaN"], id="nan"
    ),
    pytest.param(
        '{"goal": "g", "initialContext": {"a": Infinity}}', JSON, 400, "malformed_json",
        ["Infinity"], id="infinity",
    ),
    pytest.param(
        '{"goal": "g", "initialContext": {"a": -Infinity}}', JSON, 400, "malformed_json",
        ["-Infinity"], id="minus-infinity",
    ),
    pytest.param(
        '{"goal": "g", "metadata": {"a": 1e999}}', JSON, 400, "malformed_json",
        ["1e999", "out of range"], id="float-overflow",
    ),
    pytest.param(
        '{"goal": "g", "metadata": {"a": 1' + "0" * 5000 + "}}", JSON, 400, "malformed_json",
        ["5001 digits"], id="huge-integer",
    ),
    pytest.param(
        '{"goal": "g", "maxAttempts": 1' + "0" * 60 + "}", JSON, 422, "validation_error",
        ["body.maxAttempts"], id="integer-over-field-bound",
    ),
    pytest.param('{"goal": ', JSON, 400, "malformed_json", ["line 1 column 10"], id="truncated"),
    pytest.param('["goal"]', JSON, 400, "malformed_json", ["JSON object"], id="not-an-object"),
    pytest.param(b'{"goal": "\xff\xfe"}', JSON, 400, "malformed_json", ["UTF-8"], id="bad-utf8"),
    pytest.param(
        '{"goal": "g"}'.encode("utf-16"), JSON, 400, "malformed_json", ["UTF-8"], id="utf-16"
    ),
    pytest.param(
        '{"goal": "g"}', "text/plain", 415, "unsupported_media_type", ["text/plain"], id="text"
    ),
    pytest.param(
        "goal=g", "application/x-www-form-urlencoded", 415, "unsupported_media_type",
        ["application/x-www-form-urlencoded"], id="form",
    ),
    pytest.param(
        '{"goal": "g"}', "multipart/form-data; boundary=x", 415, "unsupported_media_type",
        ["multipart/form-data"], id="multipart",
    ),
    pytest.param(
        '{"goal": "g"}', None, 415, "unsupported_media_type", ["no content type"], id="none"
    ),
    pytest.param(
        '{"goal": "g"}', "application/json; charset=latin-1", 415, "unsupported_media_type",
        ["latin-1"], id="charset-latin1",
    ),
]  # fmt: skip


@pytest.mark.parametrize("data, content_type, status, code, named", RAW_BODIES)
def test_a_hostile_body_is_refused_with_a_json_error_and_changes_nothing(
    cluster, unchanged, data, content_type, status, code, named
):
    response = send(cluster, "POST", ORCHESTRATE, data, content_type)
    assert_error(response, status, code, *named)


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"goal": "'
    sent = 10
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


@pytest.mark.parametrize("path", [ORCHESTRATE, AGENTS, "/api/orchestrator/plans"])
def test_a_chunked_body_without_content_length_over_the_limit_is_a_413(cluster, unchanged, path):
    # requests sends a generator with Transfer-Encoding: chunked and no Content-Length
    response = send(cluster, "POST", path, chunks(MAX_BODY + 128 * 1024))
    error = assert_error(response, 413, "payload_too_large", "MEOWSTIK_MAX_BODY_BYTES")
    assert error["details"]["limitBytes"] == MAX_BODY


def test_a_small_chunked_body_is_read_like_any_other(cluster, unchanged):
    # the same transfer encoding under the limit reaches validation (and is refused there)
    body = json.dumps(plan_body(step("a", "echo_work", "a"))).encode()
    response = send(cluster, "POST", ORCHESTRATE, iter([body[:10], body[10:]]))
    assert_error(response, 422, "dependency_cycle", "a -> a")


# --- plans: graph, capabilities, limits ---------------------------------------------------------

MALFORMED_CAPABILITIES = ["../x", "A B", "x" * 10_000, "ünïcødé", "cap;FLUSHALL", "", "a\nb"]


@pytest.mark.parametrize(
    "capability", MALFORMED_CAPABILITIES, ids=["dotdot", "space", "10k", "unicode", "semicolon",
                                               "empty", "newline"]
)  # fmt: skip
def test_a_malformed_capability_name_is_a_422_naming_it(cluster, unchanged, capability):
    response = send(cluster, "POST", ORCHESTRATE, json.dumps(plan_body(step("a", capability))))
    error = assert_error(
        response, 422, "validation_error", "body.plan.steps.0.requiredCapabilities.0", "malformed"
    )
    assert repr(capability[:80])[1:-1] in error["message"]  # the name, quoted (shortened)


def test_an_unknown_capability_is_a_422_naming_it_and_creates_no_queue(cluster, unchanged):
    capability = f"nosuch_{uuid.uuid4().hex[:8]}"
    steps = [step("ok", "echo_work"), step("bad", capability, "ok")]
    response = send(cluster, "POST", ORCHESTRATE, json.dumps(plan_body(*steps)))
    error = assert_error(response, 422, "unroutable_step", f"bad needs {capability}")
    assert error["details"]["steps"] == {"bad": [capability]}
    names = set(redis_snapshot(redis.Redis.from_url(cluster.redis_url)))
    assert not [name for name in names if capability in name]


PLANS = [
    pytest.param(
        [step("a", "echo_work", "c"), step("b", "echo_work", "a"), step("c", "echo_work", "b")],
        "dependency_cycle", ["a -> c -> b -> a"], id="cycle",
    ),
    pytest.param([step("a", "echo_work", "a")], "dependency_cycle", ["a -> a"], id="self-cycle"),
    pytest.param(
        [step("a", "echo_work", "ghost", "phantom"), step("b", "echo_work", "nobody")],
        "unknown_dependency", ["a -> ghost, phantom", "b -> nobody"], id="unknown-deps",
    ),
    pytest.param(
        [step("a", "echo_work"), step("a", "echo_work")], "duplicate_step_id", ["a"],
        id="duplicate-ids",
    ),
    pytest.param(
        [{**step("p", "echo_work"), "subtasks": [step(f"s{i}", "echo_work") for i in range(
            DEFAULTS["max_subtasks_per_step"] + 1)]}],
        "limit_exceeded",
        ["body.plan.steps.0.subtasks", "MEOWSTIK_MAX_SUBTASKS_PER_STEP"],
        id="too-many-subtasks",
    ),
    pytest.param(
        [step("a", "echo_work"), step("b", "echo_work", blob="y" * DEFAULTS[
            "max_step_parameters_bytes"])],
        "limit_exceeded",
        ["body.plan.steps.1.parameters", "MEOWSTIK_MAX_STEP_PARAMETERS_BYTES"],
        id="step-parameters-too-big",
    ),
]  # fmt: skip


@pytest.mark.parametrize("steps, code, named", PLANS)
def test_an_invalid_plan_is_a_422_naming_the_steps(cluster, unchanged, steps, code, named):
    response = send(cluster, "POST", ORCHESTRATE, json.dumps(plan_body(*steps)))
    assert_error(response, 422, code, *named)


def deep_object(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"d": value}
    return value


REQUEST_LIMITS = [
    pytest.param(
        {"goal": "x" * (DEFAULTS["max_goal_chars"] + 1)},
        ["body.goal", "MEOWSTIK_MAX_GOAL_CHARS"], id="goal-too-long",
    ),
    pytest.param(
        {"goal": "g", "initialContext": {"blob": "c" * DEFAULTS["max_context_bytes"]}},
        ["body.initialContext", "MEOWSTIK_MAX_CONTEXT_BYTES"], id="context-too-big",
    ),
    pytest.param(
        {"goal": "g", "metadata": {f"k{i}": "v" * 20 for i in range(2000)}},
        ["body.metadata", "MEOWSTIK_MAX_METADATA_BYTES"], id="metadata-wide",
    ),
    pytest.param(
        {"goal": "g", "metadata": deep_object(DEFAULTS["max_metadata_depth"] + 1)},
        ["body.metadata", "MEOWSTIK_MAX_METADATA_DEPTH"], id="metadata-deep",
    ),
]  # fmt: skip


@pytest.mark.parametrize("body, named", REQUEST_LIMITS)
def test_a_request_over_a_limit_is_a_422_naming_the_field_and_setting(
    cluster, unchanged, body, named
):
    for path in (ORCHESTRATE, "/api/orchestrator/plans"):
        response = send(cluster, "POST", path, json.dumps(body))
        error = assert_error(response, 422, "limit_exceeded", *named)
        assert error["details"]["location"] == named[0]
        assert error["details"]["actual"] > error["details"]["limit"]


# --- agent registration -------------------------------------------------------------------------


def agent_body(**change: Any) -> dict:
    body = {
        "id": f"hostile-{uuid.uuid4().hex[:8]}",
        "name": "Hostile",
        "type": "remote",
        "capabilities": [{"name": "echo_work"}],
        "endpoint": "http://127.0.0.1:9/agent",
    }
    return {**body, **change}


ENDPOINTS = [
    pytest.param("http://169.254.169.254/latest/meta-data/", ["169.254.0.0/16"], id="metadata"),
    pytest.param("http://[::ffff:169.254.169.254]/", ["169.254.0.0/16"], id="mapped-metadata"),
    pytest.param("http://2852039166/latest", ["169.254.0.0/16"], id="decimal-metadata"),
    pytest.param("http://[fe80::1]:8080/x", ["fe80::/10"], id="ipv6-link-local"),
    pytest.param("http://0.0.0.0:8080/x", ["0.0.0.0/8"], id="unspecified"),
    pytest.param("http://224.0.0.1/x", ["224.0.0.0/4"], id="multicast"),
    pytest.param("http://255.255.255.255/x", ["255.255.255.255"], id="broadcast"),
    pytest.param("file:///etc/passwd", ["scheme 'file'"], id="file"),
    pytest.param("gopher://127.0.0.1:70/_x", ["scheme 'gopher'"], id="gopher"),
    pytest.param("http://user:pw@127.0.0.1:9/x", ["credentials"], id="credentials"),
    pytest.param("http://internal.example/x", ["not in the allowed hosts"], id="other-host"),
    pytest.param("http://127.0.0.1:9/x y", ["whitespace"], id="whitespace"),
]


@pytest.mark.parametrize("endpoint, named", ENDPOINTS)
def test_an_agent_with_a_disallowed_endpoint_is_a_422_and_not_registered(
    cluster, unchanged, endpoint, named
):
    body = agent_body(endpoint=endpoint)
    response = send(cluster, "POST", AGENTS, json.dumps(body))
    error = assert_error(response, 422, "endpoint_not_allowed", "body.endpoint", *named)
    assert error["details"]["location"] == "body.endpoint"
    assert "pw@" not in response.text  # the password is never echoed
    assert requests.get(f"{cluster.api_url}{AGENTS}/{body['id']}", timeout=10).status_code == 404


AGENT_BODIES = [
    pytest.param({"currentLoad": 3}, "agent_not_executable", ["body.currentLoad"], id="load"),
    pytest.param({"status": "offline"}, "agent_not_executable", ["body.status"], id="offline"),
    pytest.param(
        {"metadata": {f"k{i}": "v" * 20 for i in range(2000)}}, "limit_exceeded",
        ["body.metadata", "MEOWSTIK_MAX_METADATA_BYTES"], id="metadata-wide",
    ),
    pytest.param(
        {"metadata": deep_object(20)}, "limit_exceeded",
        ["body.metadata", "MEOWSTIK_MAX_METADATA_DEPTH"], id="metadata-deep",
    ),
    pytest.param(
        {"metadata": deep_object(200)}, "too_deeply_nested", ["64 levels"],
        id="metadata-deeper-than-bodies",
    ),
    pytest.param(
        {"capabilities": [{"name": "../../etc"}]}, "validation_error",
        ["body.capabilities.0.name", "'../../etc'"], id="capability-path",
    ),
    pytest.param(
        {"capabilities": [{"name": "Ω" * 5000}]}, "validation_error",
        ["body.capabilities.0.name", "5000 characters"], id="capability-long-unicode",
    ),
    pytest.param(
        {"id": "../../x"}, "validation_error", ["body.id"], id="agent-id-path",
    ),
]  # fmt: skip


@pytest.mark.parametrize("change, code, named", AGENT_BODIES)
def test_a_hostile_agent_registration_is_refused_and_registers_nothing(
    cluster, unchanged, change, code, named
):
    body = agent_body(**change)
    response = send(cluster, "POST", AGENTS, json.dumps(body))
    status = 400 if code == "too_deeply_nested" else 422
    assert_error(response, status, code, *named)


# --- the shared context of a running session ----------------------------------------------------


@pytest.fixture(scope="module")
def running_session(cluster, redis_client) -> Iterator[str]:
    """A session held running by a gate, its context filled almost to the limit."""
    gate = uuid.uuid4().hex
    sid = cluster.submit(plan_body(step("hold", "gated_work", gate=gate)))["sessionId"]
    try:
        wait_for(
            lambda: cluster.session(sid)["steps"]["hold"]["status"] == "running",
            what="the gated step running",
        )
        almost = {"fill": "f" * (DEFAULTS["max_context_bytes"] - 1000)}
        response = send(cluster, "PATCH", f"/api/orchestrator/sessions/{sid}/context",
                        json.dumps(almost))  # fmt: skip
        assert response.status_code == 200, response.text
        yield sid
    finally:
        redis_client.lpush(f"test:gate:{gate}", "open")
        cluster.wait_session(sid)


CONTEXT_PATCHES = [
    pytest.param(
        json.dumps({"big": "b" * (DEFAULTS["max_context_bytes"] + 1)}), 422, "limit_exceeded",
        ["context update bytes", "MEOWSTIK_MAX_CONTEXT_BYTES"], id="update-too-big",
    ),
    pytest.param(
        json.dumps({"more": "m" * 2000}), 422, "limit_exceeded",
        ["merged context bytes", "MEOWSTIK_MAX_CONTEXT_BYTES"], id="merged-too-big",
    ),
    pytest.param('{"a": NaN}', 400, "malformed_json", ["NaN"], id="nan"),
    pytest.param('{"a": ' + "[" * 5000 + "]" * 5000 + "}", 400, "malformed_json", ["nests"],
                 id="nested"),
    pytest.param('["a"]', 400, "malformed_json", ["JSON object"], id="array"),
    pytest.param(json.dumps({"../../x": 1}), 422, "invalid_context_key", ["'../../x'"], id="key"),
]  # fmt: skip


@pytest.mark.parametrize("data, status, code, named", CONTEXT_PATCHES)
def test_a_hostile_context_update_is_refused_and_the_context_is_unchanged(
    cluster, redis_client, running_session, data, status, code, named
):
    state_key = f"meowstik:session:{{{running_session}}}:state"
    before_state = redis_client.hgetall(state_key)
    before = redis_snapshot(redis_client)
    response = send(cluster, "PATCH", f"/api/orchestrator/sessions/{running_session}/context", data)
    assert_error(response, status, code, *named)
    assert redis_client.hgetall(state_key) == before_state
    assert redis_snapshot(redis_client) == before


@pytest.mark.parametrize("path", ["/api/orchestrator/sessions/", "/api/orchestrator/sessions?q="])
def test_a_request_line_gunicorn_refuses_is_still_a_json_error(cluster, unchanged, path):
    """gunicorn answers an over-long request line before Flask runs (api/gunicorn_conf.py)."""
    response = requests.get(f"{cluster.api_url}{path}{'x' * 9000}", timeout=10)
    assert response.status_code == 414
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] and "shorten the URL" in error["message"]
