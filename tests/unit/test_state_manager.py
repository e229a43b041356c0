"""The session state manager, against fakeredis and a real redis-server alike."""

from __future__ import annotations

import json
import time

import pytest

from orchestrator.core.errors import (
    LockLostError,
    LockTimeoutError,
    StateConflictError,
    StateKeyError,
    StateValidationError,
    TransactionClosedError,
)
from orchestrator.core.models import OrchestrateRequest
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from orchestrator.store.keys import Keys
from orchestrator.store.state import StateEntry, StateManager, StateType
from tests.support.world import build_world

KEYS = Keys(prefix="test")
SID = "s-1"
PLANNER, CODER = "planner-001", "coder-001"
ABSENT = object()
EXPIRY_DEADLINE_S = 5.0


class _AnyExpiry:
    """Equal to any expiry time (ms), for comparing whole StateEntry values."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int) and other > 0


ANY_EXPIRY = _AnyExpiry()


@pytest.fixture
def state(any_redis) -> StateManager:
    any_redis.hset(KEYS.session(SID), "status", "executing")  # writes need a running session
    return StateManager(any_redis, KEYS)


def raw_shared(client) -> dict[bytes, bytes]:
    return client.hgetall(KEYS.shared_state(SID))


# --- shared, private and temporary entries -------------------------------------------------------


def test_a_shared_value_set_by_one_agent_is_read_by_every_agent(state):
    state.set(SID, "generated_code", "def hello(): print('Hello')")

    assert state.get(SID, "generated_code") == "def hello(): print('Hello')"
    assert state.get(SID, "generated_code", agent_id=PLANNER) == "def hello(): print('Hello')"
    assert state.get(SID, "generated_code", agent_id=CODER) == "def hello(): print('Hello')"


def test_shared_values_live_in_the_hash_steps_receive_as_their_shared_state(state, any_redis):
    state.set(SID, "plan", {"steps": [1, 2], "done": False})

    assert raw_shared(any_redis) == {b"plan": b'{"steps":[1,2],"done":false}'}


def test_values_round_trip_as_json_without_losing_precision(state):
    value = {"big": 12345678901234567890, "pi": 3.141592653589793, "list": [None, "ü", True]}
    state.set(SID, "numbers", value)

    assert state.get(SID, "numbers") == value


def test_an_absent_key_reads_as_the_default(state):
    state.set(SID, "nothing", None)

    assert state.get(SID, "missing") is None
    assert state.get(SID, "missing", default=ABSENT) is ABSENT
    assert state.get(SID, "nothing", default=ABSENT) is None


def test_a_private_value_is_visible_only_to_its_agent(state):
    state.set(SID, "draft", "v1", type=StateType.PRIVATE, agent_id=PLANNER)

    assert state.get(SID, "draft", agent_id=PLANNER) == "v1"
    assert state.get(SID, "draft", agent_id=CODER) is None
    assert state.get(SID, "draft") is None
    assert "draft" not in state.entries(SID, agent_id=CODER)
    assert "draft" not in state.entries(SID)


def test_private_values_of_two_agents_under_one_key_stay_apart(state):
    state.set(SID, "notes", "planner's", type="private", agent_id=PLANNER)
    state.set(SID, "notes", "coder's", type="private", agent_id=CODER)

    assert state.get(SID, "notes", agent_id=PLANNER) == "planner's"
    assert state.get(SID, "notes", agent_id=CODER) == "coder's"


def test_a_read_prefers_private_then_temporary_then_shared(state):
    state.set(SID, "k", "shared")
    assert state.get(SID, "k", agent_id=PLANNER) == "shared"

    state.set(SID, "k", "temporary", type=StateType.TEMPORARY, ttl_s=60)
    assert state.get(SID, "k", agent_id=PLANNER) == "temporary"

    state.set(SID, "k", "private", type=StateType.PRIVATE, agent_id=PLANNER)
    assert state.get(SID, "k", agent_id=PLANNER) == "private"
    assert state.get(SID, "k", agent_id=CODER) == "temporary"

    state.delete(SID, "k", type=StateType.TEMPORARY)
    assert state.get(SID, "k", agent_id=CODER) == "shared"


def test_entries_lists_every_visible_entry_with_its_type_and_precedence(state):
    before_ms = int(time.time() * 1000)
    state.set(SID, "goal", "ship it")
    state.set(SID, "k", "shared")
    state.set(SID, "k", "temporary", type=StateType.TEMPORARY, ttl_s=60)
    state.set(SID, "cache", [1], type=StateType.TEMPORARY, ttl_s=60)
    state.set(SID, "cache", [2], type=StateType.PRIVATE, agent_id=PLANNER)
    state.set(SID, "mine", True, type=StateType.PRIVATE, agent_id=PLANNER)

    seen = state.entries(SID, agent_id=PLANNER)

    assert {key: (e.value, e.type) for key, e in seen.items()} == {
        "goal": ("ship it", StateType.SHARED),
        "k": ("temporary", StateType.TEMPORARY),
        "cache": ([2], StateType.PRIVATE),
        "mine": (True, StateType.PRIVATE),
    }
    assert before_ms + 60_000 <= seen["k"].expires_at_ms <= int(time.time() * 1000) + 60_000
    assert state.entries(SID)["cache"] == StateEntry([1], StateType.TEMPORARY, ANY_EXPIRY)


def test_a_temporary_entry_is_written_with_its_ttl_in_milliseconds(state, any_redis):
    state.set(SID, "token", "abc", type=StateType.TEMPORARY, ttl_s=30)

    assert 29_000 < any_redis.pttl(KEYS.temporary_state(SID, "token")) <= 30_000
    assert any_redis.zscore(KEYS.temporary_state_index(SID), "token") > time.time() * 1000


def test_a_temporary_entry_disappears_after_its_ttl_and_leaves_the_index(real_redis):
    real_redis.hset(KEYS.session(SID), "status", "executing")
    state = StateManager(real_redis, KEYS)
    state.set(SID, "flash", "soon gone", type=StateType.TEMPORARY, ttl_s=0.2)
    assert state.get(SID, "flash") == "soon gone"

    deadline = time.monotonic() + EXPIRY_DEADLINE_S
    while state.get(SID, "flash") is not None:
        assert time.monotonic() < deadline, "the temporary entry outlived its 200 ms TTL"
        time.sleep(0.02)

    assert "flash" not in state.entries(SID)
    assert real_redis.zcard(KEYS.temporary_state_index(SID)) == 0


def test_expired_members_of_the_temporary_index_are_pruned_on_read(any_redis):
    state = StateManager(any_redis, KEYS, clock=lambda: 1_000.0)
    any_redis.zadd(KEYS.temporary_state_index(SID), {"stale": 999_000, "live": 2_000_000})
    any_redis.set(KEYS.temporary_state(SID, "live"), '"here"')

    assert {key: e.value for key, e in state.entries(SID).items()} == {"live": "here"}
    assert any_redis.zrange(KEYS.temporary_state_index(SID), 0, -1) == [b"live"]


def test_deleting_an_entry_removes_it_from_its_scope_only(state, any_redis):
    state.set(SID, "k", "shared")
    state.set(SID, "k", "temporary", type=StateType.TEMPORARY, ttl_s=60)
    state.set(SID, "k", "private", type=StateType.PRIVATE, agent_id=PLANNER)

    assert state.delete(SID, "k", type=StateType.PRIVATE, agent_id=PLANNER) is True
    assert state.get(SID, "k", agent_id=PLANNER) == "temporary"
    assert state.delete(SID, "k", type=StateType.TEMPORARY) is True
    assert any_redis.zcard(KEYS.temporary_state_index(SID)) == 0
    assert state.get(SID, "k") == "shared"
    assert state.delete(SID, "k") is True
    assert state.delete(SID, "k") is False
    assert state.entries(SID, agent_id=PLANNER) == {}


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "line\n", "ключ", "a/b", 7, None])
def test_an_invalid_key_is_rejected_with_a_422_error_naming_it(state, key):
    with pytest.raises(StateKeyError) as error:
        state.set(SID, key, 1)

    assert error.value.http_status == 422
    assert error.value.code == "invalid_state_key"
    assert repr(key) in error.value.message
    assert "128" in error.value.message


def test_keys_of_128_allowed_characters_are_accepted(state):
    key = "Ab0_.:-" + "x" * 121
    state.set(SID, key, 1)

    assert state.get(SID, key) == 1


@pytest.mark.parametrize("value", [{1, 2}, float("nan"), float("inf"), object(), {(1, 2): "x"}])
def test_a_value_that_is_not_json_is_rejected_naming_its_key(state, any_redis, value):
    with pytest.raises(StateValidationError) as error:
        state.set(SID, "result", value)

    assert error.value.http_status == 422
    assert "'result'" in error.value.message
    assert error.value.details["key"] == "result"
    assert raw_shared(any_redis) == {}


@pytest.mark.parametrize("ttl_s", [None, 0, -1, 0.0001, float("nan"), float("inf"), True, "5"])
def test_temporary_state_without_a_positive_ttl_is_rejected(state, any_redis, ttl_s):
    with pytest.raises(StateValidationError) as error:
        state.set(SID, "t", 1, type=StateType.TEMPORARY, ttl_s=ttl_s)

    assert error.value.http_status == 422
    assert "ttl_s" in error.value.message
    assert any_redis.exists(KEYS.temporary_state(SID, "t")) == 0


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"type": StateType.PRIVATE}, "agent_id"),
        ({"agent_id": PLANNER}, "agent_id"),
        ({"type": StateType.TEMPORARY, "ttl_s": 5, "agent_id": PLANNER}, "agent_id"),
        ({"ttl_s": 5}, "ttl_s"),
        ({"type": StateType.PRIVATE, "agent_id": PLANNER, "ttl_s": 5}, "ttl_s"),
        ({"type": "global"}, "state type"),
    ],
)
def test_an_argument_that_does_not_fit_the_state_type_is_rejected(state, kwargs, named):
    with pytest.raises(StateValidationError) as error:
        state.set(SID, "k", 1, **kwargs)

    assert named in error.value.message


def test_an_invalid_agent_id_is_rejected(state):
    with pytest.raises(StateKeyError, match="agent id"):
        state.set(SID, "k", 1, type=StateType.PRIVATE, agent_id="bad:agent")
    with pytest.raises(StateKeyError, match="agent id"):
        state.get(SID, "k", agent_id="")


# --- transactions --------------------------------------------------------------------------------


def test_a_commit_applies_every_buffered_write_together(state, any_redis):
    state.set(SID, "counter", 1)
    state.set(SID, "obsolete", "x")
    tx = state.begin(SID)

    tx.set("counter", tx.get("counter") + 1)
    tx.set("test_results", {"passed": 10, "failed": 0})
    tx.delete("obsolete")
    assert state.get(SID, "counter") == 1, "buffered writes must not reach Redis before commit"
    tx.commit()

    assert raw_shared(any_redis) == {b"counter": b"2", b"test_results": b'{"passed":10,"failed":0}'}


def test_a_transaction_reads_its_own_buffered_writes(state):
    state.set(SID, "a", 1)
    tx = state.begin(SID)

    tx.set("a", 5)
    tx.delete("b")

    assert tx.get("a") == 5
    assert tx.get("b", default=ABSENT) is ABSENT


def test_a_conflicting_commit_fails_with_a_clear_error_and_changes_nothing(state, any_redis):
    state.set(SID, "a", 1)
    state.set(SID, "b", 2)
    state.set(SID, "d", "keep me")
    tx = state.begin(SID)
    tx.set("a", tx.get("a") + 10)
    tx.set("b", tx.get("b") + 10)
    tx.set("c", "new")
    tx.delete("d")

    state.set(SID, "b", 3)  # another writer, between the transaction's read and its commit
    before = raw_shared(any_redis)
    with pytest.raises(StateConflictError) as error:
        tx.commit()

    assert error.value.code == "state_conflict"
    assert error.value.http_status == 409
    assert error.value.details == {"sessionId": SID, "keys": ["b"]}
    assert "state keys 'b' changed since the transaction read them" in error.value.message
    assert "retry the transaction" in error.value.message.lower()
    assert raw_shared(any_redis) == before == {b"a": b"1", b"b": b"3", b"d": b'"keep me"'}


def test_a_key_read_as_absent_that_appears_before_commit_conflicts(state, any_redis):
    tx = state.begin(SID)
    assert tx.get("lock_owner") is None
    tx.set("lock_owner", "planner")

    state.set(SID, "lock_owner", "coder")
    with pytest.raises(StateConflictError) as error:
        tx.commit()

    assert error.value.keys == ["lock_owner"]
    assert raw_shared(any_redis) == {b"lock_owner": b'"coder"'}


def test_a_key_read_that_is_deleted_before_commit_conflicts(state, any_redis):
    state.set(SID, "a", 1)
    tx = state.begin(SID)
    tx.set("b", tx.get("a"))

    state.delete(SID, "a")
    with pytest.raises(StateConflictError, match="'a' changed"):
        tx.commit()

    assert raw_shared(any_redis) == {}


def test_every_changed_key_is_named_in_the_conflict(state):
    state.set(SID, "a", 1)
    tx = state.begin(SID)
    tx.get("a")
    tx.get("b")
    tx.get("c")

    state.set(SID, "a", 2)
    state.set(SID, "c", 3)
    with pytest.raises(StateConflictError) as error:
        tx.commit()

    assert error.value.keys == ["a", "c"]


def test_a_step_completion_writing_a_read_key_conflicts_too(any_redis):
    """A completion's state updates bump versions like any write (complete_step.lua)."""
    world = build_world(any_redis, Settings(), prefix=KEYS.prefix)
    steps = [{"id": i, "title": i, "requiredCapabilities": ["web_research"]} for i in "st"]
    plan = {"steps": steps}  # t keeps the session running after s completes
    sid = world.engine.submit(OrchestrateRequest.model_validate({"goal": "g", "plan": plan}))
    state = StateManager(any_redis, KEYS)
    state.set(sid.session_id, "a", 1)
    tx = state.begin(sid.session_id)
    tx.set("a", tx.get("a") + 1)

    run = world.lifecycle.begin(sid.session_id, "s", "researcher-001")
    world.lifecycle.succeed(run, StepResult("done", state_updates={"a": 1.0}))  # same number

    with pytest.raises(StateConflictError):
        tx.commit()
    assert state.get(sid.session_id, "a") == 1.0


def test_a_commit_keeps_stored_numbers_byte_for_byte(state, any_redis):
    any_redis.hset(KEYS.shared_state(SID), "n", "12345678901234567890.000000000000001")
    tx = state.begin(SID)
    assert tx.get("n") == 12345678901234567890.000000000000001
    tx.set("m", 12345678901234567891)
    tx.commit()

    assert raw_shared(any_redis) == {
        b"n": b"12345678901234567890.000000000000001",
        b"m": b"12345678901234567891",
    }


def test_a_value_that_is_not_json_is_rejected_when_buffered(state):
    tx = state.begin(SID)
    with pytest.raises(StateValidationError, match="'x'"):
        tx.set("x", {1})
    with pytest.raises(StateKeyError):
        tx.get("bad key")


def test_a_rollback_discards_the_buffered_writes(state, any_redis):
    state.set(SID, "a", 1)
    tx = state.begin(SID)
    tx.set("a", 2)
    tx.set("b", 3)

    tx.rollback()

    assert raw_shared(any_redis) == {b"a": b"1"}
    assert tx.status == "rolled back"


@pytest.mark.parametrize("finish", ["commit", "rollback"])
def test_a_finished_transaction_cannot_be_used_again(state, finish):
    tx = state.begin(SID)
    tx.set("a", 1)
    getattr(tx, finish)()

    for use in (lambda: tx.get("a"), lambda: tx.set("a", 2), tx.commit, lambda: tx.delete("a")):
        with pytest.raises(TransactionClosedError) as error:
            use()
        assert "begin a new transaction" in error.value.message
        assert error.value.http_status == 409


def test_a_rejected_transaction_cannot_be_committed_again_but_may_be_rolled_back(state):
    tx = state.begin(SID)
    tx.get("a")
    state.set(SID, "a", 1)
    with pytest.raises(StateConflictError):
        tx.commit()

    with pytest.raises(TransactionClosedError, match="rejected by a conflict"):
        tx.commit()
    tx.rollback()


def test_a_committed_transaction_cannot_be_rolled_back(state):
    tx = state.begin(SID)
    tx.commit()

    with pytest.raises(TransactionClosedError, match="already committed"):
        tx.rollback()


# --- locks ---------------------------------------------------------------------------------------


def test_a_held_lock_makes_a_second_owner_time_out_with_a_clear_error(state):
    with state.locked(SID, "deploy", ttl_s=30, blocking_timeout_s=0.2):
        with pytest.raises(LockTimeoutError) as error:
            with state.locked(SID, "deploy", ttl_s=30, blocking_timeout_s=0.05):
                pytest.fail("two owners held the lock at once")

    assert error.value.code == "lock_timeout"
    assert error.value.http_status == 409
    assert "'deploy'" in error.value.message and "0.05 s" in error.value.message
    assert error.value.details == {"sessionId": SID, "lock": "deploy", "waitedS": 0.05}
    with state.locked(SID, "deploy", ttl_s=30, blocking_timeout_s=0):
        pass


def test_locks_of_other_names_or_sessions_are_independent(state):
    with state.locked(SID, "deploy", ttl_s=30, blocking_timeout_s=0):
        with state.locked(SID, "review", ttl_s=30, blocking_timeout_s=0):
            with state.locked("s-2", "deploy", ttl_s=30, blocking_timeout_s=0):
                pass


def test_a_lock_carries_its_ttl_and_an_owner_token(state, any_redis):
    lock = state.lock(SID, "deploy", ttl_s=5, blocking_timeout_s=0)
    assert lock.acquire()

    assert 0 < any_redis.pttl(KEYS.lock(SID, "deploy")) <= 5_000
    assert any_redis.get(KEYS.lock(SID, "deploy")) == lock.local.token
    lock.release()
    assert any_redis.exists(KEYS.lock(SID, "deploy")) == 0


def test_a_lock_that_expired_while_held_is_reported_as_lost(state, any_redis):
    with pytest.raises(LockLostError, match="'deploy'"):
        with state.locked(SID, "deploy", ttl_s=5, blocking_timeout_s=0):
            any_redis.delete(KEYS.lock(SID, "deploy"))  # what its TTL running out looks like


def test_an_error_in_the_locked_block_is_not_hidden_by_a_lost_lock(state, any_redis):
    with pytest.raises(RuntimeError, match="agent failed"):
        with state.locked(SID, "deploy", ttl_s=5, blocking_timeout_s=0):
            any_redis.delete(KEYS.lock(SID, "deploy"))
            raise RuntimeError("agent failed")


@pytest.mark.parametrize(
    "kwargs", [{"ttl_s": 0, "blocking_timeout_s": 1}, {"ttl_s": 1, "blocking_timeout_s": -1}]
)
def test_a_lock_with_a_bad_ttl_or_timeout_is_rejected(state, kwargs):
    with pytest.raises(StateValidationError):
        state.lock(SID, "deploy", **kwargs)
    with pytest.raises(StateKeyError, match="lock name"):
        state.lock(SID, "de ploy", ttl_s=1, blocking_timeout_s=0)


# --- retention -----------------------------------------------------------------------------------


def test_expiring_a_sessions_state_covers_every_hash_index_and_long_lived_entry(state, any_redis):
    state.set(SID, "shared", 1)
    state.set(SID, "p", 1, type=StateType.PRIVATE, agent_id=PLANNER)
    state.set(SID, "p", 2, type=StateType.PRIVATE, agent_id=CODER)
    state.set(SID, "long", 1, type=StateType.TEMPORARY, ttl_s=3600)
    state.set(SID, "short", 1, type=StateType.TEMPORARY, ttl_s=30)

    state.expire_session_state(SID, retention_s=60)

    for key in (
        KEYS.shared_state(SID),
        KEYS.private_state(SID, PLANNER),
        KEYS.private_state(SID, CODER),
        KEYS.private_state_index(SID),
        KEYS.temporary_state_index(SID),
        KEYS.temporary_state(SID, "long"),
    ):
        assert 0 < any_redis.pttl(key) <= 60_000, key
    assert 0 < any_redis.pttl(KEYS.temporary_state(SID, "short")) <= 30_000
    assert json.loads(any_redis.get(KEYS.temporary_state(SID, "long"))) == 1
