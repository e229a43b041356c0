"""Driving a real redis-server into the states issue 23 handles: out of memory under
``noeviction`` (a filler key grown until Redis refuses it) and refusing writes with MISCONF (an
RDB snapshot that cannot be written), and back. Every state is reached and left by waiting on
what Redis reports (INFO), never on time.
"""

from __future__ import annotations

import redis

from tests.support.cluster import wait_for

FILLER_KEY = "test:memory-filler"
FILLER_CHUNK_BYTES = 64 * 1024
UNWRITABLE_DIR = "/proc"  # nobody can create the snapshot's temp file there, root included
SNAPSHOT_TIMEOUT_S = 20.0
FILL_ROUNDS = 5


def fill_memory(client: redis.Redis, headroom_bytes: int = 1_000_000) -> None:
    """Set ``noeviction`` and maxmemory ``headroom_bytes`` above what Redis counts against it
    now (used memory less the AOF and replication buffers it leaves out, which an AOF rewrite
    grows), then grow FILLER_KEY until Redis refuses it: Redis is out of memory. Should the
    first reading have been a passing peak, the limit is set again from a new one."""
    client.config_set("maxmemory-policy", "noeviction")
    chunk = b"x" * FILLER_CHUNK_BYTES
    for _ in range(FILL_ROUNDS):
        info = client.info("memory")
        counted = int(info["used_memory"]) - int(info.get("mem_not_counted_for_evict", 0))
        client.config_set("maxmemory", str(counted + headroom_bytes))
        for _ in range(2 * headroom_bytes // FILLER_CHUNK_BYTES + 1):
            try:
                client.append(FILLER_KEY, chunk)
            except redis.exceptions.OutOfMemoryError:
                return
    info = client.info("memory")
    raise AssertionError(
        f"Redis never refused the filler ({client.strlen(FILLER_KEY)} bytes; maxmemory "
        f"{info['maxmemory']}, used {info['used_memory']}; clients {client.client_list()})"
    )


def out_of_memory(client: redis.Redis) -> bool:
    """Whether Redis refuses a small write as out of memory now."""
    try:
        client.set("test:memory-probe", "1", px=1000)
    except redis.exceptions.OutOfMemoryError:
        return True
    return False


def free_memory(client: redis.Redis) -> None:
    """Drop the filler (DEL is allowed while out of memory): room for writes again."""
    client.delete(FILLER_KEY)


def lift_memory_limit(client: redis.Redis) -> None:
    """Drop the filler and maxmemory: Redis as it started."""
    client.delete(FILLER_KEY)
    client.config_set("maxmemory", "0")


def _snapshot_status(client: redis.Redis) -> str | None:
    persistence = client.info("persistence")
    if persistence["rdb_bgsave_in_progress"]:
        return None
    return str(persistence["rdb_last_bgsave_status"])


def refuse_writes(client: redis.Redis) -> dict[str, str]:
    """Make Redis answer MISCONF to writes: snapshots on (``save``), stop-writes-on-bgsave-error,
    and a BGSAVE into a directory where the snapshot cannot be created. Returns the settings to
    give back to ``accept_writes``."""
    saved = {name: client.config_get(name)[name] for name in ("dir", "save")}
    client.config_set("stop-writes-on-bgsave-error", "yes")
    client.config_set("save", "3600 1")  # MISCONF needs snapshots configured
    client.config_set("dir", UNWRITABLE_DIR)
    client.bgsave()
    wait_for(lambda: _snapshot_status(client) == "err", SNAPSHOT_TIMEOUT_S, what="BGSAVE to fail")
    return saved


def accept_writes(client: redis.Redis, saved: dict[str, str]) -> None:
    """Undo ``refuse_writes``: the directory back, a BGSAVE that succeeds (which clears the
    refusal), then the ``save`` setting back."""
    client.config_set("dir", saved["dir"])
    wait_for(lambda: _snapshot_status(client) is not None, SNAPSHOT_TIMEOUT_S, what="no BGSAVE")
    client.bgsave()
    wait_for(lambda: _snapshot_status(client) == "ok", SNAPSHOT_TIMEOUT_S, what="BGSAVE to work")
    client.config_set("save", saved["save"])


def keys_under(client: redis.Redis, prefix: str) -> set[bytes]:
    """Every key under ``prefix`` (SCAN: a test's view, never a request path's)."""
    return set(client.scan_iter(match=f"{prefix}*", count=1000))
