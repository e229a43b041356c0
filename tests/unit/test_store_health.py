"""Issue 23: a Redis that can evict keys is refused at every process's start (API, worker,
`meowstik up`) unless MEOWSTIK_REDIS_ALLOW_EVICTION makes it a warning; /healthz says why Redis
cannot hold the records (an evicting policy, out of memory, MISCONF); a worker stops taking
work while the policy evicts. Read with INFO memory from a real redis-server."""

from __future__ import annotations

import argparse
import logging
from types import SimpleNamespace

import pytest
import redis

from api import create_app
from cli import worker as worker_command
from cli.cluster_startup import _refuse_evicting_redis
from cli.supervisor_errors import SupervisorError
from orchestrator.core.errors import EvictionPolicyError, StoreNotWritableError
from orchestrator.core.store_health import MemoryInfo, judge, parse_memory_info
from orchestrator.settings import Settings
from orchestrator.store.keys import Keys
from orchestrator.store.redis_health import EvictionGuard
from orchestrator.store.workers import WorkerRegistry
from tests.support.recording import RecordingDispatcher
from tests.support.redis_memory import fill_memory, lift_memory_limit
from workers.celery_app import create_celery_app
from workers.hosting import Presence

EVICTING = "allkeys-lru"

# --- the verdict (pure) -------------------------------------------------------------------------


def test_noeviction_within_its_memory_is_healthy():
    verdict = judge(MemoryInfo("noeviction", 900, 1000), None, allow_eviction=False)
    assert verdict.healthy and verdict.summary == "ok" and not verdict.warnings


@pytest.mark.parametrize(
    "policy", ["allkeys-lru", "volatile-ttl", "allkeys-random", "volatile-lfu"]
)
def test_an_evicting_policy_is_a_problem_unless_allowed_then_a_warning(policy):
    refused = judge(MemoryInfo(policy), None, allow_eviction=False)
    allowed = judge(MemoryInfo(policy), None, allow_eviction=True)

    assert not refused.healthy and refused.problems[0].code == "redis_eviction_policy"
    assert "CONFIG SET maxmemory-policy noeviction" in refused.problems[0].message
    assert "MEOWSTIK_REDIS_ALLOW_EVICTION" in refused.problems[0].message
    assert refused.summary == f"maxmemory-policy {policy} evicts keys"
    assert allowed.healthy and allowed.warnings[0].code == "redis_eviction_policy"


def test_an_unreadable_policy_is_neither_refused_nor_warned_about():
    assert judge(MemoryInfo(None), None, allow_eviction=False) == judge(
        MemoryInfo("noeviction"), None, allow_eviction=False
    )


def test_out_of_memory_is_what_redis_counts_against_maxmemory():
    # used memory less the AOF and replication buffers Redis does not count
    assert MemoryInfo("noeviction", 1200, 1000, not_counted_bytes=100).out_of_memory
    assert not MemoryInfo("noeviction", 1200, 1000, not_counted_bytes=300).out_of_memory
    assert not MemoryInfo("noeviction", 10**9, 0).out_of_memory  # no maxmemory
    assert not MemoryInfo("allkeys-lru", 1200, 1000).out_of_memory  # it evicts instead
    full = judge(MemoryInfo("noeviction", 1200, 1000), None, allow_eviction=False)
    assert [note.code for note in full.problems] == ["store_out_of_memory"]


def test_a_refused_write_is_a_problem_with_the_errors_message():
    refused = StoreNotWritableError("aof")
    verdict = judge(MemoryInfo("noeviction"), refused, allow_eviction=False)
    assert verdict.problems[0].code == "store_not_writable"
    assert verdict.problems[0].message == refused.message
    assert verdict.summary == "cannot persist: refuses writes"


def test_info_memory_is_read_by_field_name():
    info = {"maxmemory_policy": "noeviction", "used_memory": 5, "maxmemory": 9}
    assert parse_memory_info(info) == MemoryInfo("noeviction", 5, 9, 0)
    assert parse_memory_info({}) == MemoryInfo(None)


# --- on a real Redis ----------------------------------------------------------------------------


@pytest.fixture
def policy(real_redis):
    """Sets Redis's maxmemory-policy for the test; noeviction and no limit again after it."""

    def set_policy(name: str) -> None:
        real_redis.config_set("maxmemory-policy", name)

    yield set_policy
    lift_memory_limit(real_redis)
    real_redis.config_set("maxmemory-policy", "noeviction")


def make_app(client, **settings):
    return create_app(Settings(**settings), redis_client=client, dispatcher=RecordingDispatcher())


def test_the_api_refuses_to_start_on_an_evicting_redis(real_redis, policy):
    policy(EVICTING)
    with pytest.raises(EvictionPolicyError) as caught:
        make_app(real_redis)
    assert caught.value.policy == EVICTING
    assert "CONFIG SET maxmemory-policy noeviction" in caught.value.message


def test_allowed_eviction_starts_with_a_loud_warning_and_healthz_warns(real_redis, policy, caplog):
    policy(EVICTING)
    with caplog.at_level(logging.WARNING, logger="orchestrator.store.redis_health"):
        api = make_app(real_redis, redis_allow_eviction=True).test_client()
    assert "evicts keys" in caplog.text and "MEOWSTIK_REDIS_ALLOW_EVICTION=true" in caplog.text

    response = api.get("/healthz")

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok" and "problems" not in body
    assert [warning["code"] for warning in body["warnings"]] == ["redis_eviction_policy"]


def test_healthz_answers_503_with_the_reason_when_the_policy_changes_after_start(
    real_redis, policy
):
    api = make_app(real_redis).test_client()
    assert api.get("/healthz").get_json() == {"status": "ok", "redis": "ok"}

    policy(EVICTING)
    response = api.get("/healthz")

    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["redis"] == f"maxmemory-policy {EVICTING} evicts keys"
    assert [problem["code"] for problem in body["problems"]] == ["redis_eviction_policy"]
    assert "noeviction" in body["problems"][0]["message"]


def test_healthz_answers_503_while_redis_is_out_of_memory(real_redis, policy):
    api = make_app(real_redis).test_client()
    fill_memory(real_redis)

    response = api.get("/healthz")

    assert response.status_code == 503
    assert response.get_json()["redis"] == "out of memory: refuses writes"
    assert response.get_json()["problems"][0]["code"] == "store_out_of_memory"


def test_a_worker_refuses_to_start_on_an_evicting_redis(redis_server, policy, monkeypatch, capsys):
    policy(EVICTING)
    monkeypatch.setenv("MEOWSTIK_REDIS_URL", redis_server.url)
    args = argparse.Namespace(
        agents="", remote=False, replica=None, concurrency=1, pool="solo", name=None,
        loglevel="INFO",
    )  # fmt: skip

    assert worker_command.run(args) == 2
    assert "maxmemory-policy is 'allkeys-lru'" in capsys.readouterr().err


def test_meowstik_up_refuses_an_evicting_redis_before_starting_anything(redis_server, policy):
    plan = SimpleNamespace(settings=Settings(redis_url=redis_server.url))
    _refuse_evicting_redis(plan)  # type: ignore[arg-type]  # noeviction: nothing to say

    policy(EVICTING)
    with pytest.raises(SupervisorError, match="MEOWSTIK_REDIS_ALLOW_EVICTION"):
        _refuse_evicting_redis(plan)  # type: ignore[arg-type]
    allowed = Settings(redis_url=redis_server.url, redis_allow_eviction=True)
    _refuse_evicting_redis(SimpleNamespace(settings=allowed))  # type: ignore[arg-type]


def test_a_running_worker_stops_heartbeating_while_the_policy_evicts(
    redis_server, real_redis, policy, caplog
):
    # Given a worker's presence that started on a noeviction Redis
    settings = Settings(redis_url=redis_server.url)
    presence = Presence(create_celery_app(settings), settings, {}, remote=False)
    presence.eviction.check_at_start()
    presence.worker = "w1@test"
    registry = WorkerRegistry(real_redis, Keys(settings.key_prefix))
    # When the policy becomes an evicting one
    policy(EVICTING)
    with caplog.at_level(logging.ERROR, logger="orchestrator.store.redis_health"):
        presence.beat()
        presence.beat()
    # Then it does not heartbeat (nothing is routed to it), and says why once
    assert registry.alive_until("w1@test") is None
    assert caplog.text.count("takes no work") == 1
    # When the policy is noeviction again, it heartbeats again
    policy("noeviction")
    presence.beat()
    assert registry.alive_until("w1@test") is not None


def test_an_unanswering_redis_is_not_checked_at_start_and_is_checked_when_it_answers(
    real_redis, policy
):
    down = EvictionGuard(redis.Redis(port=1, socket_connect_timeout=0.2), False, "test")
    assert down.check_at_start() is None and down.allows_work()
    guard = EvictionGuard(real_redis, False, "test")
    policy(EVICTING)
    assert not guard.allows_work()
