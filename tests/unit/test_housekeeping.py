"""After retention nothing of a session stays in Redis: the workers' heartbeat prunes index
entries of expired sessions (all, by status, by user) and trims the cross-session log."""

import time

from orchestrator.core.models import OrchestrateRequest
from orchestrator.settings import Settings
from tests.support.world import build_world

HOUR_MS = 3_600_000
STEP = {"id": "a", "title": "A", "requiredCapabilities": ["web_research"]}


def submit(world, user: str) -> str:
    request = OrchestrateRequest.model_validate(
        {
            "goal": "g",
            "userId": user,
            "plan": {"steps": [STEP]},
        }
    )
    return world.engine.submit(request).session_id


def test_expired_sessions_leave_every_index_and_the_global_log_is_trimmed(any_redis):
    world = build_world(any_redis, Settings())
    world.clock.now_s = time.time()  # log entry ids are Redis's clock
    keys, sessions = world.sessions.keys, world.sessions
    gone = submit(world, "alice")
    kept = submit(world, "bob")
    any_redis.delete(keys.session(gone))  # as retention's PEXPIRE would
    now = world.now_ms() + HOUR_MS
    assert any_redis.xlen(keys.global_logs) > 0

    dropped = sessions.housekeep(now_ms=now, retention_ms=HOUR_MS // 2)

    assert dropped == 3  # all, executing, alice's
    members = lambda index: {m.decode() for m in any_redis.zrange(index, 0, -1)}  # noqa: E731
    assert members(keys.sessions_index) == {kept}
    assert members(keys.sessions_by_status("executing")) == {kept}
    assert not any_redis.exists(keys.sessions_by_user("alice"))
    assert members(keys.sessions_by_user("bob")) == {kept}
    assert {u.decode() for u in any_redis.smembers(keys.session_users)} == {"bob"}
    assert any_redis.xlen(keys.global_logs) == 0  # every entry is older than the cutoff


def test_housekeeping_keeps_what_retention_has_not_reached(any_redis):
    world = build_world(any_redis, Settings())
    world.clock.now_s = time.time()
    keys = world.sessions.keys
    sid = submit(world, "alice")
    any_redis.delete(keys.session(sid))
    entries = any_redis.xlen(keys.global_logs)
    # created just now: not older than retention, so not even looked at
    assert world.sessions.housekeep(now_ms=world.now_ms(), retention_ms=HOUR_MS) == 0
    assert {m.decode() for m in any_redis.zrange(keys.sessions_index, 0, -1)} == {sid}
    assert any_redis.xlen(keys.global_logs) == entries
