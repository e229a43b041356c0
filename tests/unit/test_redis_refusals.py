"""Issue 23: Redis refusing writes (out of memory under noeviction, MISCONF) becomes a typed,
retryable store error, answered as a JSON 503 with Retry-After, never a 500, and nothing is
written half-way. The replies are Redis 6.2's, as redis-py raises them; the store tests run on
a real redis-server driven out of memory."""

from __future__ import annotations

from contextlib import contextmanager

import kombu
import pytest
import redis
from kombu.exceptions import OperationalError

from api import create_app
from orchestrator.core.dispatch import StepDispatch
from orchestrator.core.errors import (
    DispatchError,
    StoreNotWritableError,
    StoreOutOfMemoryError,
    StoreUnavailableError,
)
from orchestrator.core.fleet import DEFAULT_AGENTS
from orchestrator.core.logentry import LogEntry
from orchestrator.settings import Settings
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.errors import refused_write, refused_write_in, translate
from orchestrator.store.keys import Keys
from orchestrator.store.logbook import Logbook
from orchestrator.store.sessions import SessionStore
from tests.support.recording import RecordingDispatcher
from tests.support.redis_memory import fill_memory, lift_memory_limit
from workers.dispatcher import CeleryDispatcher

OOM = "command not allowed when used memory > 'maxmemory'."
SCRIPT = "Error running script (call to f_9a8d): @user_script:1: @user_script: 1: -"
RDB = (
    "MISCONF Redis is configured to save RDB snapshots, but it is currently not able to persist "
    "on disk. Commands that may modify the data set are disabled"
)
AOF = "MISCONF Errors writing to the AOF file: No space left on device"
TOKEN = "alice-token-0123456789abcdef"

# --- the mapping --------------------------------------------------------------------------------

REFUSALS = [
    (redis.exceptions.OutOfMemoryError(OOM), StoreOutOfMemoryError, None),
    (redis.exceptions.OutOfMemoryError(f"Command # 1 (DEL x) of pipeline caused error: {OOM}"),
     StoreOutOfMemoryError, None),
    (redis.ResponseError(f"{SCRIPT}OOM {OOM}"), StoreOutOfMemoryError, None),
    (redis.exceptions.ExecAbortError(f"Transaction discarded because of: OOM {OOM}"),
     StoreOutOfMemoryError, None),
    (redis.ResponseError(RDB), StoreNotWritableError, "rdb"),
    (redis.ResponseError(AOF), StoreNotWritableError, "aof"),
    (redis.ResponseError(f"{SCRIPT}{AOF}"), StoreNotWritableError, "aof"),
    (redis.ResponseError(f"Command # 1 (SET b 1) of pipeline caused error: {RDB}"),
     StoreNotWritableError, "rdb"),
    (redis.exceptions.ExecAbortError(f"Transaction discarded because of: {RDB}"),
     StoreNotWritableError, "rdb"),
    (redis.ResponseError("NOREPLICAS Not enough good replicas to write."),
     StoreNotWritableError, "replicas"),
    (redis.ResponseError(f"{SCRIPT}NOREPLICAS Not enough good replicas to write."),
     StoreNotWritableError, "replicas"),
]  # fmt: skip


@pytest.mark.parametrize("reply, kind, persistence", REFUSALS)
def test_a_refused_write_becomes_its_retryable_store_error(reply, kind, persistence):
    error = translate(reply)

    assert type(error) is kind and isinstance(error, StoreUnavailableError)
    assert error.retryable and error.http_status == 503 and error.__cause__ is reply
    assert error.headers == {"Retry-After": "5"} and error.details["retryAfterS"] == 5
    assert getattr(error, "persistence", None) == persistence
    assert "nothing was recorded" in error.message and "Retry later" in error.message


@pytest.mark.parametrize(
    "reply",
    [
        redis.ResponseError("ERR unknown command 'FOO'"),
        redis.ResponseError("ERR value MISCONFIGURED is not an integer"),  # not the word
        redis.ResponseError("WRONGTYPE XMISCONF against a key holding the wrong kind"),
        redis.ConnectionError("Connection refused"),
    ],
)
def test_other_errors_stay_store_unavailable(reply):
    assert refused_write(reply) is None
    error = translate(reply)
    assert type(error) is StoreUnavailableError and error.code == "store_unavailable"
    assert error.headers == {"Retry-After": "1"}


def test_refused_credentials_are_not_retryable_and_ask_for_no_retry():
    error = translate(redis.AuthenticationError("WRONGPASS invalid username-password pair"))
    assert not error.retryable and error.headers == {} and "retryAfterS" not in error.details


def test_a_refusal_wrapped_by_kombu_is_found_in_the_chain():
    try:
        try:
            raise redis.exceptions.OutOfMemoryError(OOM)
        except redis.RedisError as inner:
            raise OperationalError(
                f"Command # 1 (LLEN q) of pipeline caused error: {inner}"
            ) from inner
    except OperationalError as wrapped:
        assert isinstance(refused_write_in(wrapped), StoreOutOfMemoryError)
    assert refused_write_in(OperationalError("Error 111 connecting")) is None


class FailingApp:
    """The two things CeleryDispatcher uses of a Celery app, the publish raising ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    @contextmanager
    def producer_or_acquire(self):
        yield None

    def send_task(self, *args, **kwargs):
        raise self.error


def test_a_publish_redis_refuses_raises_the_store_error_not_a_broker_outage():
    dispatch = [StepDispatch.of("s1", "a", "q", None)]
    refused = OperationalError("refused")
    refused.__cause__ = redis.ResponseError(RDB)

    with pytest.raises(StoreNotWritableError):
        CeleryDispatcher(FailingApp(refused)).dispatch(dispatch)  # type: ignore[arg-type]
    with pytest.raises(DispatchError):
        CeleryDispatcher(FailingApp(OperationalError("Error 111"))).dispatch(dispatch)  # type: ignore[arg-type]


# --- on a real Redis, out of memory -------------------------------------------------------------


@pytest.fixture
def full(real_redis):
    """The test's Redis, which it fills; given back with no limit."""
    yield real_redis
    lift_memory_limit(real_redis)


def make_app(client, **settings):
    built = Settings(**settings)
    registry = AgentRegistry(client, Keys(built.key_prefix))
    for agent in DEFAULT_AGENTS:
        registry.register(agent, worker="w1", now_ms=0, alive_ms=10**13)
    return create_app(built, redis_client=client, dispatcher=RecordingDispatcher())


def snapshot(client: redis.Redis) -> dict[bytes, bytes | None]:
    return {key: client.dump(key) for key in client.scan_iter(match="meowstik:*")}


HOSTILE_BODIES = [
    {"goal": "<script>alert(1)</script><!--"},
    {"goal": f"-OOM {OOM} MISCONF {AOF}"},  # a goal quoting Redis's refusals changes nothing
    {"goal": "\u202egnp.exe \U0001f431 \\u0000 {{7*7}} ${jndi:ldap://x}"},
    {"goal": "g", "metadata": {"__proto__": {"polluted": True}, "a\nb": "</script>"}},
    {"goal": "g", "initialContext": {"deep": [[[["x" * 1000]]]]}, "userId": "u\u0000"},
]


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_any_submit_to_a_full_redis_answers_the_same_json_503_and_writes_no_key(full, body):
    # Given the API on a Redis out of memory under noeviction
    api = make_app(full).test_client()
    fill_memory(full)
    before = snapshot(full)
    # When a client submits (a hostile body, with an Idempotency-Key)
    response = api.post(
        "/api/orchestrator/orchestrate", json=body, headers={"Idempotency-Key": "k-1"}
    )
    # Then the answer is the store's error in the API's shape, whatever the body said
    assert response.status_code in (422, 503), response.get_data(as_text=True)
    if response.status_code == 422:
        return  # refused by validation before anything reached Redis
    assert response.mimetype == "application/json" and response.headers["Retry-After"] == "5"
    payload = response.get_json()
    assert list(payload) == ["error"] and set(payload["error"]) == {"code", "message", "details"}
    assert payload["error"] == {
        "code": "store_out_of_memory",
        "message": StoreOutOfMemoryError().message,
        "details": {"retryable": True, "redis": "OOM", "retryAfterS": 5},
    }
    assert "Traceback" not in response.get_data(as_text=True)
    # and not one key was written or changed
    assert snapshot(full) == before


def test_reads_go_on_and_writes_answer_503_for_a_token_holder_while_redis_is_full(full):
    # Given the API with tokens (every request counted by the rate limiter, a Redis write)
    api = make_app(full, api_tokens=f"alice:user:{TOKEN}").test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    created = api.post("/api/orchestrator/orchestrate", json={"goal": "g"}, headers=auth)
    sid = created.get_json()["sessionId"]
    # When Redis is out of memory
    fill_memory(full)
    # Then reading the session still works, and a submit answers the store's 503, not a 429
    assert api.get(f"/api/orchestrator/sessions/{sid}", headers=auth).status_code == 200
    refused = api.post("/api/orchestrator/orchestrate", json={"goal": "g"}, headers=auth)
    assert refused.status_code == 503
    assert refused.get_json()["error"]["code"] == "store_out_of_memory"


def test_an_idempotency_key_is_given_up_even_while_redis_is_full(full):
    keys = Keys("meowstik")
    store = SessionStore(full, keys).idempotency
    assert store.claim("scope-1", "digest", "orch-1-aa", 60) is None
    assert store.claim("scope-2", "digest", "orch-2-bb", 60) is None
    fill_memory(full)

    store.release("scope-1", "orch-1-aa")
    store.release("scope-2", "orch-9-zz")  # held for another session: kept

    assert full.get(keys.idempotency("scope-1")) is None
    assert full.get(keys.idempotency("scope-2")) == b"digest|orch-2-bb"


def test_a_script_and_its_log_entries_are_refused_together(full):
    # a logging script writes its entries itself (lua/_logs.lua): out of memory, a completion's
    # first write is refused and nothing is written, neither the completion nor its log entry
    keys = Keys("meowstik")
    store = SessionStore(full, keys, Logbook(full, keys))
    running = '{"status": "running", "token": "t1", "agentId": "a-1", "startedAt": 1}'
    full.hset(keys.session("orch-1-aa"), mapping={"status": "executing", "goal": "g"})
    full.hset(keys.steps("orch-1-aa"), "s", running)
    before = {key: full.dump(key) for key in full.keys("meowstik:*")}
    fill_memory(full)
    entry = LogEntry("info", "task", "Step completed", session_id="orch-1-aa", task_id="s")

    with pytest.raises(StoreOutOfMemoryError):
        store.complete(
            "orch-1-aa",
            "s",
            token="t1",
            now_ms=2,
            output_json='"done"',
            agent_id="a-1",
            reserve_ms=1000,
            logs=[entry],
        )

    assert {key: full.dump(key) for key in full.keys("meowstik:*")} == before
    assert not full.exists(keys.session_logs("orch-1-aa"), keys.global_logs)


def test_an_ack_redis_refuses_leaves_the_message_for_redelivery_instead_of_raising(
    full, redis_server
):
    transport = "workers.broker_transport:Transport"
    with kombu.Connection(redis_server.url, transport=transport) as connection:
        queue = connection.SimpleQueue("refused-ack")
        queue.put({"step": "a"})
        message = queue.get(timeout=5)
        fill_memory(full)

        message.ack()  # kombu's own QoS raises OutOfMemoryError here, stopping the worker

        assert message.acknowledged
        assert full.hlen("unacked") == 1  # kombu restores it after the visibility timeout
        lift_memory_limit(full)
        queue.close()
