"""The autoscaler's rule (cli.autoscale.decide) and replica agents, without processes."""

from __future__ import annotations

import pytest

from cli.autoscale import Action, Limits, Pool, decide
from cli.commands import worker_command
from cli.processes import ManagedProcess
from orchestrator.core.fleet import CODER
from workers.agents.base import FunctionAgent, ReplicaAgent, replica_id

LIMITS = Limits(max_workers=3, backlog=10, up_after_s=5.0, idle_s=30.0)


def pool_with(*replicas: int) -> Pool:
    pool = Pool(CODER)
    for number in replicas:
        pool.replicas[number] = ManagedProcess(f"worker {number}", ["true"])
    return pool


def test_a_deep_backlog_adds_a_replica_only_after_it_stayed_deep_for_up_after_s() -> None:
    pool = pool_with()
    assert decide(pool, 50, 100.0, LIMITS, 0) is None  # deep from now on
    assert decide(pool, 50, 104.9, LIMITS, 0) is None
    assert decide(pool, 50, 105.0, LIMITS, 0) is Action.ADD


def test_a_backlog_that_dips_below_the_threshold_starts_the_deep_stretch_over() -> None:
    pool = pool_with()
    decide(pool, 50, 100.0, LIMITS, 0)
    assert decide(pool, 9, 103.0, LIMITS, 0) is None
    assert decide(pool, 50, 106.0, LIMITS, 0) is None
    assert decide(pool, 50, 111.0, LIMITS, 0) is Action.ADD


def test_no_replica_is_added_while_the_last_one_is_starting_or_at_the_maximum() -> None:
    starting = pool_with(2)
    starting.starting = 2
    decide(starting, 50, 0.0, LIMITS, 0)
    assert decide(starting, 50, 60.0, LIMITS, 0) is None
    full = pool_with(2, 3)
    decide(full, 50, 0.0, LIMITS, 0)
    assert decide(full, 50, 60.0, LIMITS, 0) is None


def test_an_idle_pool_drains_its_newest_replica_then_stops_it_once_its_load_is_zero() -> None:
    pool = pool_with(2)
    assert decide(pool, 0, 0.0, LIMITS, 0) is None
    assert decide(pool, 0, 29.0, LIMITS, 0) is None
    assert decide(pool, 0, 30.0, LIMITS, 0) is Action.DRAIN
    pool.draining = 2
    assert decide(pool, 0, 32.0, LIMITS, draining_load=1) is None  # still finishing a step
    assert decide(pool, 0, 34.0, LIMITS, draining_load=0) is Action.STOP


def test_the_agent_itself_is_never_drained() -> None:
    pool = pool_with()
    decide(pool, 0, 0.0, LIMITS, 0)
    assert decide(pool, 0, 1000.0, LIMITS, 0) is None


def test_a_backlog_that_returns_during_a_drain_reactivates_the_replica() -> None:
    pool = pool_with(2)
    pool.draining = 2
    assert decide(pool, 40, 0.0, LIMITS, draining_load=0) is Action.REACTIVATE


def test_a_small_backlog_neither_adds_nor_removes() -> None:
    pool = pool_with(2)
    for moment in (0.0, 100.0, 200.0):
        assert decide(pool, 3, moment, LIMITS, 0) is None


def test_a_replica_agent_has_its_own_id_and_slots_and_does_the_originals_work() -> None:
    original = FunctionAgent(CODER, lambda step_input: {"done": step_input})
    replica = ReplicaAgent(original, 2)
    assert replica.definition.id == "coder-001.r2" == replica_id("coder-001", 2)
    assert replica.definition.max_load == CODER.max_load
    assert replica.definition.capability_names == CODER.capability_names
    assert replica.definition.metadata["replicaOf"] == "coder-001"
    assert replica.run("x") == {"done": "x"}  # type: ignore[arg-type]
    assert CODER.id == "coder-001"  # the original definition is untouched
    with pytest.raises(ValueError, match="start at 2"):
        ReplicaAgent(original, 1)


def test_a_replica_worker_command_names_the_replica_and_its_node() -> None:
    command = worker_command(CODER, replica=3, program=["meowstik"])
    assert command == [
        "meowstik", "worker", "--agents", "coder-001", "--name", "coder-r3@%h", "--replica", "3"
    ]  # fmt: skip


def test_the_backlog_counts_this_deployments_queued_messages_and_waiting_steps_only(
    fake_redis,
) -> None:
    from cli.autoscale import Autoscaler
    from orchestrator.settings import Settings
    from orchestrator.store.keys import Keys

    settings = Settings(redis_url="redis://127.0.0.1:1/0", key_prefix="blue")
    scaler = Autoscaler(None, settings, [CODER], None, client=fake_redis)
    pool = pool_with(2)
    blue, green = Keys("blue"), Keys("green")
    fake_redis.rpush(blue.broker("agent.coder-001"), "m1", "m2")
    fake_redis.rpush(blue.broker("agent.coder-001.r2"), "m3")
    fake_redis.rpush(blue.broker("cap.testing"), "m4")
    fake_redis.rpush(blue.waiting("code_generation"), "s1|a")
    # another deployment's queue of the same name, and an unprefixed list, count for nothing
    fake_redis.rpush(green.broker("agent.coder-001"), *["g"] * 9)
    fake_redis.rpush("agent.coder-001", *["x"] * 9)

    assert scaler.backlog(pool) == 5
