"""The store's side of the exception tree: a redis-py error never leaves a store class; it
becomes StoreUnavailableError (503), retryable unless Redis refused the credentials.

``translates_redis_errors`` wraps every public method of a store class. Script errors that are
bugs (a Lua ``ResponseError``) are translated too: to callers the store is unavailable, and the
cause stays chained for the log.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from orchestrator.core.errors import StoreUnavailableError

T = TypeVar("T")


def translate(exc: redis.RedisError) -> StoreUnavailableError:
    """The domain error for a redis-py error."""
    if isinstance(exc, redis.AuthenticationError | redis.exceptions.NoPermissionError):
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
