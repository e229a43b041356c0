"""One Redis URL for broker and state, in every form kombu and redis-py both understand.

``MEOWSTIK_REDIS_URL`` may be:

- ``redis://[user:password@]host:port/db`` or ``rediss://...`` (TLS): as is, for both.
- ``unix:///path/to/redis.sock[?db=N]``: redis-py takes it as is; kombu spells it
  ``redis+socket:///path/to/redis.sock``, so :func:`broker_url` translates it.
- ``sentinel://[user:password@]host:port[;sentinel://host:port...][/db]``: Redis Sentinel.
  kombu asks the sentinels for the master named by ``MEOWSTIK_REDIS_SENTINEL_MASTER`` (a
  transport option); :func:`redis_client` does the same through redis-py's ``Sentinel``, so
  after a failover both follow the new master. The password is the master's; sentinels are
  asked without one.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

import redis
from redis.sentinel import Sentinel

SENTINEL_SCHEME = "sentinel"
UNIX_SCHEME = "unix"
DEFAULT_SENTINEL_PORT = 26379
_URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/]*@")
# query parameters that carry credentials, e.g. redis://host/0?password=... (redis-py reads it)
_SECRET_QUERY = re.compile(
    r"([?&][^=&#]*(?:pass|passwd|password|pwd|secret|token|key)=)[^&#]*", re.I
)


class RedisUrlError(ValueError):
    """A Redis URL this product cannot use; the message says what to write instead."""


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


def redis_client(url: str, *, sentinel_master: str = "mymaster", **options: Any) -> redis.Redis:
    """A redis-py client for ``url`` (see the module docstring for the accepted forms).

    Options are redis-py connection options (socket_timeout, health_check_interval, ...).
    """
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **options)
    parsed = parse_sentinel_url(url)
    timeout_names = ("socket_timeout", "socket_connect_timeout")
    timeouts = {name: options[name] for name in timeout_names if name in options}
    sentinel = Sentinel(parsed.sentinels, sentinel_kwargs=timeouts)
    return sentinel.master_for(
        sentinel_master,
        db=parsed.db,
        username=parsed.username,
        password=parsed.password,
        **options,
    )


def broker_url(url: str) -> str:
    """The URL as kombu's Redis transport spells it (only ``unix://`` differs)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != UNIX_SCHEME:
        return url
    query = urllib.parse.parse_qs(parts.query)
    db = query.get("db", ["0"])[0]
    # kombu reads the database as the "virtual host" of a socket URL's query
    return f"redis+socket://{parts.path}?virtual_host={db}"


def broker_transport_options(url: str, sentinel_master: str) -> dict[str, Any]:
    """Extra kombu transport options the URL needs (the master's name for Sentinel)."""
    return {"master_name": sentinel_master} if is_sentinel(url) else {}


def redact_url(url: str) -> str:
    """The URL safe to print: every ``user:password@`` password (each sentinel's too) and
    query parameters like ``password=`` or ``token=`` as ***. Pattern-based, so it also masks
    URLs too broken to parse."""
    return _SECRET_QUERY.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", url))
