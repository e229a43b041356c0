"""Registering an agent over the API is create-only and atomic: the id check and the writes are
one transaction, so concurrent registrations of one id cannot both succeed."""

import threading

import pytest
import redis

from orchestrator.core.errors import AgentExistsError
from orchestrator.core.models import AgentDefinition, AgentExecutor, Capability
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.keys import Keys

CONTENDERS = 8
ROUNDS = 15


def http_agent(agent_id: str, name: str = "hook") -> AgentDefinition:
    return AgentDefinition(
        id=agent_id,
        name=name,
        type="http",
        executor=AgentExecutor.HTTP,
        endpoint="http://127.0.0.1:8080/hook",
        capabilities=[Capability(name="notify")],
    )


def race(registry: AgentRegistry, definitions: list[AgentDefinition]) -> list[str]:
    """Every definition registered at once from its own thread: "created" or "exists" each."""
    start = threading.Barrier(len(definitions))
    outcomes: list[str] = []

    def register(definition: AgentDefinition) -> None:
        start.wait()
        try:
            registry.create_remote(definition, now_ms=1_000)
            outcomes.append(f"created {definition.name}")
        except AgentExistsError:
            outcomes.append("exists")

    threads = [threading.Thread(target=register, args=(d,)) for d in definitions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


def test_of_concurrent_create_only_registrations_of_one_id_exactly_one_succeeds(any_redis):
    registry = AgentRegistry(any_redis, Keys("t"))
    for round_ in range(ROUNDS):
        agent_id = f"hook-{round_}"
        contenders = [http_agent(agent_id, name=f"n{i}") for i in range(CONTENDERS)]
        outcomes = race(registry, contenders)
        created = [o for o in outcomes if o.startswith("created")]
        assert len(created) == 1 and outcomes.count("exists") == CONTENDERS - 1, outcomes
        # and what is stored is the winner's definition, whole
        assert registry.get(agent_id, 1_000).name == created[0].removeprefix("created ")


def test_a_create_only_registration_of_a_taken_id_changes_nothing(any_redis):
    keys = Keys("t")
    registry = AgentRegistry(any_redis, keys)
    registry.create_remote(http_agent("hook"), now_ms=1_000)
    before = any_redis.hgetall(keys.agent("hook"))
    with pytest.raises(AgentExistsError) as caught:
        registry.create_remote(http_agent("hook", name="other"), now_ms=2_000)
    assert caught.value.details == {"agentId": "hook"} and caught.value.http_status == 409
    assert any_redis.hgetall(keys.agent("hook")) == before


def test_a_registration_landing_between_the_check_and_the_write_wins_and_the_other_says_exists(
    any_redis,
):
    keys = Keys("t")
    registry = AgentRegistry(any_redis, keys)
    real_transaction = any_redis.transaction
    interrupted: list[bool] = []

    def interleaved(func, *watches, **kwargs):
        def checked_then_interrupted(pipe: redis.client.Pipeline) -> None:
            func(pipe)  # the id was free: the writes are queued, not yet executed
            if not interrupted:
                interrupted.append(True)
                registry.create_remote(http_agent("hook", name="first"), now_ms=1_000)

        return real_transaction(checked_then_interrupted, *watches, **kwargs)

    any_redis.transaction = interleaved
    try:
        with pytest.raises(AgentExistsError):
            registry.create_remote(http_agent("hook", name="second"), now_ms=1_000)
    finally:
        del any_redis.transaction
    assert interrupted and registry.get("hook", 1_000).name == "first"


def test_a_new_remote_agent_is_alive_while_a_remote_executor_is(any_redis):
    keys = Keys("t")
    registry = AgentRegistry(any_redis, keys)
    any_redis.set(keys.remote_executor_alive, 50_000)
    registry.create_remote(http_agent("hook"), now_ms=1_000)
    assert registry.get("hook", 2_000).status == "active"
    assert registry.remote_agent_ids() == ["hook"]
    assert registry.candidates(["notify"], 2_000)[0].id == "hook"
