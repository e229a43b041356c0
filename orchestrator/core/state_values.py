"""State keys and values, checked and encoded: rules the state manager and transactions share.

A key (or lock name) matches ``KEY_PATTERN``; a value is stored as its compact JSON encoding.
Breaking either raises StateValidationError (422), or its subclass StateKeyError for a bad key.
Kept apart so that state.py and transactions.py can both use these without importing each other.

    StateValidationError     a bad key, value, scope, TTL or lock argument (422)
    └── StateKeyError        a key, lock name or agent id outside its allowed pattern
"""

from __future__ import annotations

import json
import re
from typing import Any

from orchestrator.core.errors import StateKeyError, StateValidationError

KEY_PATTERN = r"[A-Za-z0-9_.:-]{1,128}"
KEY_RULE = "use 1 to 128 letters, digits, '_', '.', ':' or '-'"
_COMPACT = (",", ":")
_SHOWN_CHARS = 160


def check_key(key: object, field: str = "state key") -> str:
    """Return ``key`` if it is a valid state key or lock name, else raise StateKeyError."""
    if not isinstance(key, str) or not re.fullmatch(KEY_PATTERN, key):
        raise StateKeyError(field, key, KEY_RULE)
    return key


def encode(key: str, value: Any) -> str:
    """The compact JSON of ``value``; StateValidationError naming ``key`` if it has none."""
    try:
        return json.dumps(value, allow_nan=False, separators=_COMPACT)
    except (TypeError, ValueError) as exc:
        advice = f"it is not JSON ({exc}); store strings, finite numbers, booleans, null, lists"
        raise StateValidationError(
            f"the value of state key {key!r}", value, advice + " and objects", key=key
        ) from exc
