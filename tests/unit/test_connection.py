"""Redis URL forms: what kombu and redis-py are each given."""

from __future__ import annotations

import pytest

from orchestrator.settings import Settings
from orchestrator.store.connection import (
    RedisUrlError,
    broker_transport_options,
    broker_url,
    parse_sentinel_url,
    redact_url,
)


def test_tcp_and_tls_urls_reach_kombu_unchanged() -> None:
    for url in ("redis://u:p@h:6379/2", "rediss://h:6380/0"):
        assert broker_url(url) == url
        assert broker_transport_options(url, "mymaster") == {}


def test_a_unix_socket_url_is_spelled_the_kombu_way_with_its_database() -> None:
    assert (
        broker_url("unix:///run/redis.sock?db=3") == "redis+socket:///run/redis.sock?virtual_host=3"
    )
    assert broker_url("unix:///run/redis.sock") == "redis+socket:///run/redis.sock?virtual_host=0"


def test_a_sentinel_url_lists_every_sentinel_and_names_the_master_for_kombu() -> None:
    parsed = parse_sentinel_url("sentinel://:pw@s1:26379;sentinel://s2/4")
    assert parsed.sentinels == [("s1", 26379), ("s2", 26379)]
    assert (parsed.db, parsed.password) == (4, "pw")
    url = "sentinel://s1:26379"
    assert broker_url(url) == url
    assert broker_transport_options(url, "prod") == {"master_name": "prod"}


@pytest.mark.parametrize(
    "url", ["sentinel://s1:26379;redis://s2:6379", "sentinel://s1:26379/zero", "sentinel://"]
)
def test_a_malformed_sentinel_url_says_how_to_write_it(url: str) -> None:
    with pytest.raises(RedisUrlError, match="sentinel|number"):
        parse_sentinel_url(url)


def test_settings_build_a_sentinel_client_for_the_configured_master() -> None:
    settings = Settings(redis_url="sentinel://127.0.0.1:1/2", redis_sentinel_master="meow")
    client = settings.redis_client()
    pool = client.connection_pool
    assert pool.service_name == "meow"
    assert pool.connection_kwargs["db"] == 2


def test_printed_urls_hide_every_password_and_credential_query() -> None:
    assert (
        redact_url("sentinel://:pw1@s1:26379;sentinel://u:pw2@s2:26379/0")
        == "sentinel://:***@s1:26379;sentinel://u:***@s2:26379/0"
    )
    assert redact_url("rediss://h:6380/0?password=pw3&ssl_cert_reqs=none") == (
        "rediss://h:6380/0?password=***&ssl_cert_reqs=none"
    )
    assert redact_url("redis://127.0.0.1:6399/0") == "redis://127.0.0.1:6399/0"
