"""Redis URL forms: what kombu and redis-py are each given."""

from __future__ import annotations

import re
import ssl

import pytest
import redis

from orchestrator.core.errors import RedisUrlError
from orchestrator.settings import Settings
from orchestrator.store.connection import (
    FailoverAwareConnection,
    broker_transport_options,
    broker_url,
    broker_use_ssl,
    client_for,
    parse_sentinel_url,
    redact_url,
    redis_client,
    tls_options,
)
from workers.celery_app import create_celery_app


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
    client = client_for(
        settings,
    )
    pool = client.connection_pool
    assert pool.service_name == "meow"
    assert pool.connection_kwargs["db"] == 2
    # connections that notice a demoted master in a script's refusal too (test_sentinel_failover)
    assert pool.connection_class is FailoverAwareConnection


def test_printed_urls_hide_every_password_and_credential_query() -> None:
    assert (
        redact_url("sentinel://:pw1@s1:26379;sentinel://u:pw2@s2:26379/0")
        == "sentinel://:***@s1:26379;sentinel://u:***@s2:26379/0"
    )
    assert redact_url("rediss://h:6380/0?password=pw3&ssl_cert_reqs=none") == (
        "rediss://h:6380/0?password=***&ssl_cert_reqs=none"
    )
    assert redact_url("redis://127.0.0.1:6399/0") == "redis://127.0.0.1:6399/0"


CA = "/etc/meowstik/ca.pem"


def test_a_bare_tls_url_verifies_the_certificate_in_kombu_as_in_redis_py() -> None:
    url = "rediss://u:p@h:6380/0"
    assert tls_options(url) == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    assert broker_use_ssl(url) == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    # and Celery hands exactly that to kombu, instead of kombu's unverified default
    app = create_celery_app(Settings(redis_url=url))
    with app.connection_for_write() as connection:
        assert connection.ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
        # kombu's Redis transport (workers/broker_transport.py's subclass): TLS from .ssl
        assert connection.transport_cls == "workers.broker_transport:Transport"


def test_tls_query_options_are_parsed_once_and_given_to_both_without_the_query() -> None:
    url = (
        f"rediss://u:p@h:6380/2?ssl_cert_reqs=required&ssl_ca_certs={CA}"
        "&ssl_certfile=/c.pem&ssl_keyfile=/k.pem&ssl_check_hostname=false&ssl_ca_path=/cas"
        "&ssl_password=kp"
    )
    expected = {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": CA,
        "ssl_certfile": "/c.pem",
        "ssl_keyfile": "/k.pem",
        "ssl_check_hostname": False,
        "ssl_ca_path": "/cas",
        "ssl_password": "kp",
    }
    assert tls_options(url) == expected
    assert broker_url(url) == "rediss://u:p@h:6380/2"
    app = create_celery_app(Settings(redis_url=url))
    assert app.conf.broker_url == "rediss://u:p@h:6380/2"
    with app.connection_for_write() as connection:
        assert connection.ssl == expected
        assert (connection.hostname, connection.port, connection.virtual_host) == ("h", 6380, "2")
    # redis-py: an SSL connection with the same options
    pool = redis_client(url).connection_pool
    assert pool.connection_class is redis.SSLConnection
    assert {k: pool.connection_kwargs[k] for k in expected} == expected
    assert (pool.connection_kwargs["username"], pool.connection_kwargs["db"]) == ("u", 2)


def test_other_query_parameters_stay_in_the_url() -> None:
    url = "rediss://h:6380/0?ssl_cert_reqs=none&socket_timeout=5"
    assert tls_options(url) == {"ssl_cert_reqs": ssl.CERT_NONE}
    assert broker_url(url) == "rediss://h:6380/0?socket_timeout=5"
    assert redis_client(url).connection_pool.connection_kwargs["socket_timeout"] == 5.0


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("required", ssl.CERT_REQUIRED),
        ("CERT_OPTIONAL", ssl.CERT_OPTIONAL),
        ("none", ssl.CERT_NONE),
    ],
)
def test_cert_reqs_accepts_redis_py_and_kombu_spellings(value, mode) -> None:
    assert tls_options(f"rediss://h/0?ssl_cert_reqs={value}")["ssl_cert_reqs"] == mode


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("rediss://h/0?ssl_cert_reqs=maybe", "ssl_cert_reqs='maybe' is not one of"),
        ("rediss://h/0?ssl_check_hostname=perhaps", "must be true or false"),
        ("rediss://h/0?ssl_ca_certs=", "ssl_ca_certs is empty"),
        ("rediss://h/0?ssl_verify=yes", "unknown TLS option 'ssl_verify'"),
        (f"redis://h/0?ssl_ca_certs={CA}", "need TLS: write rediss://"),
    ],
)
def test_a_bad_tls_option_is_refused_with_what_to_write(url, message) -> None:
    with pytest.raises(RedisUrlError, match=re.escape(message)):
        tls_options(url)
    with pytest.raises(RedisUrlError, match=re.escape(message)):
        redis_client(url)


def test_urls_without_tls_have_no_tls_options() -> None:
    for url in ("redis://h:6379/0", "unix:///run/redis.sock?db=1", "sentinel://s1:26379"):
        assert tls_options(url) is None
        assert broker_use_ssl(url) is None
