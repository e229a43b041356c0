"""State scopes, keys and values, checked and encoded: rules the state manager, its
transactions, the agents' view of state and the REST routes share (pure).

A key (or lock name) matches ``KEY_PATTERN``; a value is stored as its compact JSON encoding, at
most the manager's ``max_value_bytes``. Breaking either raises StateValidationError (422), or its
subclass StateKeyError for a bad key. An entry's version lives under its field:
"s|<key>" shared, "t|<key>" temporary, "p|<agent id>|<key>" private.

    StateValidationError     a bad key, value, scope, TTL or lock argument (422)
    └── StateKeyError        a key, lock name or agent id outside its allowed pattern
"""

from __future__ import annotations

import json
import math
import re
from enum import StrEnum
from typing import Any

from orchestrator.core.errors import StateKeyError, StateValidationError

KEY_PATTERN = r"[A-Za-z0-9_.:-]{1,128}"
KEY_RULE = "use 1 to 128 letters, digits, '_', '.', ':' or '-'"
AGENT_RULE = "use a letter or digit, then up to 63 letters, digits, '_', '.' or '-'"


class StateType(StrEnum):
    SHARED = "shared"
    PRIVATE = "private"
    TEMPORARY = "temporary"


_FIELD_TAG = {StateType.SHARED: "s", StateType.TEMPORARY: "t", StateType.PRIVATE: "p"}


def state_field(scope: StateType, key: str, agent_id: str | None = None) -> str:
    """The field an entry's version is kept under (see the module docstring)."""
    if scope is StateType.PRIVATE:
        return f"p|{agent_id}|{key}"
    return f"{_FIELD_TAG[scope]}|{key}"


def positive_ms(seconds: object, field: str) -> int:
    """``seconds`` as whole milliseconds, at least 1; StateValidationError otherwise."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or round(seconds * 1000) < 1
    ):
        raise StateValidationError(field, seconds, "give a finite number of seconds, >= 0.001")
    return round(seconds * 1000)


def check_scope(kind: object, agent_id: object) -> StateType:
    """The StateType ``kind`` names, checking that ``agent_id`` comes with private state only."""
    try:
        scope = StateType(kind if isinstance(kind, str) else "")
    except ValueError as exc:
        raise StateValidationError("state type", kind, f"use {', '.join(StateType)}") from exc
    if (agent_id is not None) != (scope is StateType.PRIVATE):
        advice = (
            "private state belongs to one agent: pass its agent_id"
            if scope is StateType.PRIVATE
            else f"only private state takes one, not {scope}: drop it or pass type=private"
        )
        raise StateValidationError("agent_id", agent_id, advice, type=scope.value)
    return scope


def check_ttl_ms(scope: StateType, ttl_s: object) -> int:
    """``ttl_s`` in ms for temporary state, which needs it; 0 for the others, which refuse it."""
    if (ttl_s is not None) != (scope is StateType.TEMPORARY):
        advice = (
            "temporary state expires: pass ttl_s, the seconds it lives"
            if scope is StateType.TEMPORARY
            else f"only temporary state takes one, not {scope}: drop it or pass type=temporary"
        )
        raise StateValidationError("ttl_s", ttl_s, advice, type=scope.value)
    return 0 if ttl_s is None else positive_ms(ttl_s, "ttl_s")


_COMPACT = (",", ":")


def check_key(key: object, field: str = "state key") -> str:
    """Return ``key`` if it is a valid state key or lock name, else raise StateKeyError."""
    if not isinstance(key, str) or not re.fullmatch(KEY_PATTERN, key):
        raise StateKeyError(field, key, KEY_RULE)
    return key


def encode(key: str, value: Any, max_bytes: int | None = None) -> str:
    """The compact JSON of ``value``; StateValidationError naming ``key`` if it has none, or if
    it is larger than ``max_bytes``."""
    try:
        raw = json.dumps(value, allow_nan=False, separators=_COMPACT)
    except (TypeError, ValueError, RecursionError) as exc:
        reason = "it nests too deeply" if isinstance(exc, RecursionError) else str(exc)
        advice = f"it is not JSON ({reason}); store strings, finite numbers, booleans, null, lists"
        raise StateValidationError(
            f"the value of state key {key!r}", value, advice + " and objects", key=key
        ) from exc
    size = len(raw.encode())
    if max_bytes is not None and size > max_bytes:
        raise StateValidationError(
            f"the value of state key {key!r}",
            f"<{size} bytes of JSON>",
            f"it is larger than {max_bytes} bytes (MEOWSTIK_MAX_STATE_VALUE_BYTES); store less, "
            "or a reference to it",
            key=key,
            bytes=size,
            limitBytes=max_bytes,
        )
    return raw
