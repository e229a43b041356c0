"""One Redis URL for broker and state, in every form kombu and redis-py both understand.

``MEOWSTIK_REDIS_URL`` may be:

- ``redis://[user:password@]host:port/db``: as is, for both (``user`` is a Redis 6 ACL user;
  ``:password@`` alone authenticates the ``default`` user).
- ``rediss://[user:password@]host:port/db[?ssl_...]``: TLS, with the certificate verified by
  default (``ssl_cert_reqs=required``, the system's CAs, the host name checked), the same for
  both. Options in the query: ``ssl_cert_reqs`` (``required``, ``optional``, ``none``),
  ``ssl_ca_certs`` (CA bundle file), ``ssl_ca_path`` (CA directory), ``ssl_certfile`` and
  ``ssl_keyfile`` (client certificate), ``ssl_password`` (its key's password),
  ``ssl_check_hostname`` (``true``/``false``). :func:`tls_options` parses them once;
  redis-py gets them as connection options and kombu as ``broker_use_ssl``, both from the URL
  without them (kombu alone would fall back to an unverified connection for a bare
  ``rediss://``, and reads only some of these spellings).
- ``unix:///path/to/redis.sock[?db=N]``: redis-py takes it as is; kombu spells it
  ``redis+socket:///path/to/redis.sock``, so :func:`broker_url` translates it.
- ``sentinel://[user:password@]host:port[;sentinel://host:port...][/db]``: Redis Sentinel.
  kombu asks the sentinels for the master named by ``MEOWSTIK_REDIS_SENTINEL_MASTER`` (a
  transport option); :func:`redis_client` does the same through redis-py's ``Sentinel``, so
  after a failover both follow the new master. The password is the master's; sentinels are
  asked without one. Our client's connections are :class:`FailoverAwareConnection`: a
  connection still open to a demoted master is dropped on its first refused script too.
"""

from __future__ import annotations

import re
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any

import redis
from redis.sentinel import Sentinel, SentinelManagedConnection

from orchestrator.core.errors import RedisUrlError
from orchestrator.settings import Settings

SENTINEL_SCHEME = "sentinel"
UNIX_SCHEME = "unix"
TLS_SCHEME = "rediss"
TLS_PREFIX = "ssl_"
_CERT_REQS = {
    "required": ssl.CERT_REQUIRED,
    "optional": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE,
}
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
DEFAULT_SENTINEL_PORT = 26379
_URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/]*@")
# query parameters that carry credentials, e.g. redis://host/0?password=... (redis-py reads it)
_SECRET_QUERY = re.compile(
    r"([?&][^=&#]*(?:pass|passwd|password|pwd|secret|token|key)=)[^&#]*", re.I
)


# a write refused by a replica; a script quotes it inside "Error running script ..." (Redis 6)
_REPLICA_REFUSAL = "You can't write against a read only replica"


class FailoverAwareConnection(SentinelManagedConnection):
    """A connection to the master Sentinel names that notices when it talks to a replica.

    After a failover a connection opened before it may still reach the old master, now a
    replica. redis-py drops such a connection on a plain READONLY reply and raises
    ConnectionError, so the command is retried on a new connection to the master the sentinels
    name. A Lua script's write is refused differently on Redis 6: a ResponseError "Error
    running script ... -READONLY ...", which redis-py passes on, keeping the connection, so
    every script call on it would keep failing. Here that reply is treated like a READONLY
    one (the script stopped at its first write, having changed nothing: safe to retry).
    """

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except redis.ResponseError as exc:
            if not (self.connection_pool.is_master and _REPLICA_REFUSAL in str(exc)):
                raise
            self.disconnect()
            raise redis.ConnectionError(
                "the master this connection reached is now a replica; asking the sentinels "
                "for the new one"
            ) from exc


@dataclass(frozen=True)
class SentinelUrl:
    """The parts of a ``sentinel://`` URL (one or more sentinels separated by ``;``)."""

    sentinels: list[tuple[str, int]]
    db: int
    username: str | None
    password: str | None


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Raises RedisUrlError on a malformed list."""
    sentinels: list[tuple[str, int]] = []
    db, username, password = 0, None, None
    for part in url.split(";"):
        parts = urllib.parse.urlsplit(part.strip())
        if parts.scheme != SENTINEL_SCHEME or not parts.hostname:
            raise RedisUrlError(
                f"{part!r} is not a sentinel address; write sentinel://host:port, several "
                "separated by ';', e.g. sentinel://s1:26379;sentinel://s2:26379/0"
            )
        sentinels.append((parts.hostname, parts.port or DEFAULT_SENTINEL_PORT))
        username = username or parts.username
        password = password or parts.password
        if parts.path.strip("/"):
            try:
                db = int(parts.path.strip("/"))
            except ValueError:
                raise RedisUrlError(
                    f"database {parts.path!r} in {part!r} must be a number"
                ) from None
    return SentinelUrl(sentinels, db, username, password)


def is_sentinel(url: str) -> bool:
    return url.startswith(f"{SENTINEL_SCHEME}://")


def _cert_reqs(value: str) -> ssl.VerifyMode:
    try:
        return _CERT_REQS[value.lower().removeprefix("cert_")]
    except KeyError:
        raise RedisUrlError(
            f"ssl_cert_reqs={value!r} is not one of {', '.join(_CERT_REQS)}"
        ) from None


def _boolean(name: str, value: str) -> bool:
    try:
        return _BOOLEANS[value.lower()]
    except KeyError:
        raise RedisUrlError(f"{name}={value!r} must be true or false") from None


def _text(name: str, value: str) -> str:
    if not value:
        raise RedisUrlError(f"{name} is empty in the Redis URL")
    return value


_TLS_QUERY = {
    "ssl_cert_reqs": lambda name, value: _cert_reqs(value),
    "ssl_ca_certs": _text,
    "ssl_ca_path": _text,
    "ssl_certfile": _text,
    "ssl_keyfile": _text,
    "ssl_password": _text,
    "ssl_check_hostname": _boolean,
}


def _split_tls_query(url: str) -> tuple[str, list[tuple[str, str]]]:
    """The URL without its ``ssl_*`` query parameters, and those parameters."""
    parts = urllib.parse.urlsplit(url)
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    tls = [(name, value) for name, value in pairs if name.lower().startswith(TLS_PREFIX)]
    if not tls:
        return url, []
    rest = [(name, value) for name, value in pairs if not name.lower().startswith(TLS_PREFIX)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(rest))), tls


def tls_options(url: str) -> dict[str, Any] | None:
    """The TLS options of a ``rediss://`` URL as redis-py connection options (which kombu's
    Redis transport hands to the same redis-py connection class), or None for a URL without
    TLS. Verification is on unless the URL says ``ssl_cert_reqs=none``.

    Raises RedisUrlError for an unknown ``ssl_*`` option, a bad value, or ``ssl_*`` options on
    a URL that is not ``rediss://`` (they would be ignored, or fail later, without TLS).
    """
    _, tls = _split_tls_query(url)
    if not url.startswith(f"{TLS_SCHEME}://"):
        if tls:
            names = ", ".join(sorted({name for name, _ in tls}))
            raise RedisUrlError(
                f"{names} in the Redis URL need TLS: write rediss:// instead of "
                f"{url.split('://', 1)[0]}://"
            )
        return None
    options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    for name, value in tls:
        parse = _TLS_QUERY.get(name.lower())
        if parse is None:
            raise RedisUrlError(
                f"unknown TLS option {name!r} in the Redis URL; known: {', '.join(_TLS_QUERY)}"
            )
        options[name.lower()] = parse(name, value)
    return options


def redis_client(url: str, *, sentinel_master: str = "mymaster", **options: Any) -> redis.Redis:
    """A redis-py client for ``url`` (see the module docstring for the accepted forms).

    Options are redis-py connection options (socket_timeout, health_check_interval, ...).
    """
    if not is_sentinel(url):
        tls = tls_options(url)
        if tls is None:
            return redis.Redis.from_url(url, **options)
        return redis.Redis.from_url(_split_tls_query(url)[0], **tls, **options)
    parsed = parse_sentinel_url(url)
    timeout_names = ("socket_timeout", "socket_connect_timeout")
    timeouts = {name: options[name] for name in timeout_names if name in options}
    sentinel = Sentinel(parsed.sentinels, sentinel_kwargs=timeouts)
    return sentinel.master_for(
        sentinel_master,
        db=parsed.db,
        username=parsed.username,
        password=parsed.password,
        connection_class=FailoverAwareConnection,
        **options,
    )


def client_for(settings: Settings, **options: Any) -> redis.Redis:
    """A client for the settings' effective Redis URL (plain, TLS, unix socket or Sentinel)."""
    return redis_client(
        settings.effective_redis_url, sentinel_master=settings.redis_sentinel_master, **options
    )


def broker_url(url: str) -> str:
    """The URL as kombu's Redis transport spells it: ``unix://`` differs, and a ``rediss://``
    URL loses its ``ssl_*`` options, which kombu gets from :func:`broker_use_ssl` instead."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == TLS_SCHEME:
        tls_options(url)  # raises on a bad option before kombu sees the URL
        return _split_tls_query(url)[0]
    if parts.scheme != UNIX_SCHEME:
        return url
    query = urllib.parse.parse_qs(parts.query)
    db = query.get("db", ["0"])[0]
    # kombu reads the database as the "virtual host" of a socket URL's query
    return f"redis+socket://{parts.path}?virtual_host={db}"


def broker_use_ssl(url: str) -> dict[str, Any] | None:
    """Celery's ``broker_use_ssl`` for the URL: its TLS options, or None without TLS."""
    return tls_options(url)


def broker_transport_options(url: str, sentinel_master: str) -> dict[str, Any]:
    """Extra kombu transport options the URL needs (the master's name for Sentinel)."""
    return {"master_name": sentinel_master} if is_sentinel(url) else {}


def redact_url(url: str) -> str:
    """The URL safe to print: every ``user:password@`` password (each sentinel's too) and
    query parameters like ``password=`` or ``token=`` as ***. Pattern-based, so it also masks
    URLs too broken to parse."""
    return _SECRET_QUERY.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", url))
