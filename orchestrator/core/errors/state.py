"""Errors of the State Manager: values, keys, transactions and locks."""

from __future__ import annotations

from typing import Any

from orchestrator.core.errors.base import OrchestratorError

_SHOWN_CHARS = 160  # how much of a refused value a message quotes


class StateValidationError(OrchestratorError):
    code = "invalid_state"
    http_status = 422

    def __init__(self, field: str, value: object, advice: str, **details: Any) -> None:
        self.field, self.value = field, value
        shown = repr(value)
        if len(shown) > _SHOWN_CHARS:
            shown = shown[:_SHOWN_CHARS] + "..."
        super().__init__(
            f"{field} {shown} is not allowed: {advice}.",
            details={"field": field, "value": shown, **details},
        )


class StateKeyError(StateValidationError):
    code = "invalid_state_key"


class StateConflictError(OrchestratorError):
    code = "state_conflict"
    http_status = 409

    def __init__(self, session_id: str, keys: list[str]) -> None:
        self.session_id, self.keys = session_id, keys
        super().__init__(
            f"transaction on session {session_id!r} not committed: state keys "
            f"{', '.join(map(repr, keys))} changed since the transaction read them, so nothing was "
            "written. Retry the transaction: begin a new one, read the keys again and reapply it.",
            details={"sessionId": session_id, "keys": keys},
        )


class TransactionClosedError(OrchestratorError):
    code = "transaction_closed"
    http_status = 409

    def __init__(self, session_id: str, status: str) -> None:
        self.session_id, self.status = session_id, status
        super().__init__(
            f"this transaction on session {session_id!r} is already {status} and cannot be used "
            "again; begin a new transaction.",
            details={"sessionId": session_id, "status": status},
        )


class LockTimeoutError(OrchestratorError):
    code = "lock_timeout"
    http_status = 409

    def __init__(self, session_id: str, name: str, waited_s: float) -> None:
        self.session_id, self.name, self.waited_s = session_id, name, waited_s
        super().__init__(
            f"lock {name!r} of session {session_id!r} is held by another owner; gave up after "
            f"waiting {waited_s:g} s. It frees when its holder releases it or its TTL runs out: "
            "retry later or wait longer (blocking_timeout_s).",
            details={"sessionId": session_id, "lock": name, "waitedS": waited_s},
        )


class LockLostError(OrchestratorError):
    code = "lock_lost"
    http_status = 409

    def __init__(self, session_id: str, name: str, ttl_s: float) -> None:
        self.session_id, self.name, self.ttl_s = session_id, name, ttl_s
        super().__init__(
            f"lock {name!r} of session {session_id!r} expired before it was released: the work "
            f"under it outlasted its TTL of {ttl_s:g} s, so another owner may have held it "
            "meanwhile. Raise ttl_s, or extend the lock while working.",
            details={"sessionId": session_id, "lock": name, "ttlS": ttl_s},
        )


class StateNotFoundError(OrchestratorError):
    code = "state_not_found"
    http_status = 404

    def __init__(self, session_id: str, key: str) -> None:
        self.session_id, self.key = session_id, key
        super().__init__(
            f"session {session_id!r} has no state entry {key!r} (never written, deleted, or a "
            "temporary entry that expired); GET .../state lists what it has",
            details={"sessionId": session_id, "key": key},
        )
