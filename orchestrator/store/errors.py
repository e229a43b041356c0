"""The store's side of the exception tree: a redis-py error never leaves a store class; it
becomes StoreUnavailableError (503), retryable unless Redis refused the credentials, or one of
its two kinds of refused writes:

- StoreOutOfMemoryError: "OOM command not allowed when used memory > 'maxmemory'" (redis-py's
  OutOfMemoryError; inside a Lua script or a queued MULTI command, a ResponseError that says so).
- StoreNotWritableError: "MISCONF ..." (a plain ResponseError): Redis cannot write its AOF or
  its last RDB snapshot failed, and refuses writes until it can persist again.

Both are retryable: Redis refuses the whole command (a MULTI/EXEC aborts entirely; a Lua script
fails at its first write, before it changed anything), so nothing was recorded.

``translates_redis_errors`` wraps every public method of a store class. Script errors that are
bugs (a Lua ``ResponseError``) are translated too: to callers the store is unavailable, and the
cause stays chained for the log.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from orchestrator.core.errors import (
    StoreNotWritableError,
    StoreOutOfMemoryError,
    StoreUnavailableError,
)

T = TypeVar("T")

OOM_REPLY = "command not allowed when used memory > 'maxmemory'"
# at the start of the reply, or after a script's "@user_script: 1: -" or a pipeline's "error: "
_MISCONF_REPLY = re.compile(r"(?:^|[\s:-])MISCONF\b")
_NOREPLICAS_REPLY = re.compile(r"(?:^|[\s:-])NOREPLICAS\b")


def refused_write(exc: BaseException) -> StoreUnavailableError | None:
    """The domain error when ``exc`` is Redis refusing a write (OOM, MISCONF or NOREPLICAS),
    else None.

    Read from the reply's text too: redis-py gives the OOM class to a plain reply only, while a
    script's or a queued command's refusal arrives as a ResponseError that quotes it."""
    if not isinstance(exc, redis.ResponseError):
        return None
    reply = str(exc)
    if isinstance(exc, redis.exceptions.OutOfMemoryError) or OOM_REPLY in reply:
        return StoreOutOfMemoryError()
    if _NOREPLICAS_REPLY.search(reply):
        return StoreNotWritableError("replicas")
    found = _MISCONF_REPLY.search(reply)
    if found is None:
        return None
    return StoreNotWritableError("aof" if "AOF" in reply[found.start() :] else "rdb")


def refused_write_in(exc: BaseException) -> StoreUnavailableError | None:
    """``refused_write`` of ``exc`` or of an error it was raised from (kombu wraps redis-py's
    errors in its OperationalError), else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        refused = refused_write(current)
        if refused is not None:
            return refused
        current = current.__cause__ or current.__context__
    return None


def translate(exc: redis.RedisError) -> StoreUnavailableError:
    """The domain error for a redis-py error."""
    refused = refused_write(exc)
    if refused is not None:
        error = refused
    elif isinstance(exc, redis.AuthenticationError | redis.exceptions.NoPermissionError):
        error = StoreUnavailableError.refused_credentials()
    else:
        error = StoreUnavailableError.no_answer(type(exc).__name__)
    error.__cause__ = exc
    return error


def _wrapped(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except redis.RedisError as exc:
            raise translate(exc) from exc

    return call


def translates_redis_errors(cls: type[T]) -> type[T]:
    """Class decorator: public methods raise StoreUnavailableError instead of redis errors.
    Generators and context managers are left alone (their callers iterate inside the store's
    own error handling or expect redis-py's own errors, as redis-py's Lock does)."""
    for name, member in list(vars(cls).items()):
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        if inspect.isgeneratorfunction(member) or hasattr(member, "__wrapped__"):
            continue
        setattr(cls, name, _wrapped(member))
    return cls
