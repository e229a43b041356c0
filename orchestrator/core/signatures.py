"""Signed requests from Meowstik (pure): webhooks and HTTP agent calls carry
``X-Meowstik-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``, the HMAC of ``"<t>.<body>"``
under a shared secret, as Stripe signs its webhooks. The receiver recomputes it over the raw
body it got, compares in constant time, and refuses a timestamp outside its tolerance (a
replayed old request). Several ``v1`` entries may appear while a secret is being rotated:
any one matching is enough."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

SIGNATURE_HEADER = "X-Meowstik-Signature"
DEFAULT_TOLERANCE_S = 300


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def sign(secrets: str | Iterable[str], body: bytes | str, timestamp: int | None = None) -> str:
    """The header value for ``body``, signed with each secret (the first is the current one;
    later ones are for receivers still on an older secret)."""
    t = int(time.time()) if timestamp is None else timestamp
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    return ",".join([f"t={t}", *(f"v1={_digest(k, t, _bytes(body))}" for k in keys)])


def verify_signature(
    body: bytes | str,
    header: str | None,
    secret: str | Iterable[str],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Whether ``header`` (the X-Meowstik-Signature value) signs ``body`` (the raw request
    body, exactly as received) with ``secret`` (or any of several), at a time within
    ``tolerance_s`` of ``now``. False for a missing or malformed header."""
    if not header:
        return False
    timestamp, signatures = None, []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    keys = [secret] if isinstance(secret, str) else list(secret)
    payload = _bytes(body)
    expected = [_digest(k, timestamp, payload) for k in keys]
    return any(hmac.compare_digest(e, s) for e in expected for s in signatures)
