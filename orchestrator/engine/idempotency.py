"""Idempotent submits: POST /orchestrate with an ``Idempotency-Key`` header creates at most one
session per (caller, key) for MEOWSTIK_IDEMPOTENCY_TTL_S.

The key is claimed in Redis (SET NX) for a session id chosen before planning, with a digest of
the request. The first request plans and stores that session; a request with the same key and
body gets it back (a replay), waiting briefly when the first has not stored it yet; the same key
with another body is a 422. A submit that fails (a plan error, Redis or the broker down) gives
the key up, so the client's retry submits again. Keys are per user: the scope is a digest of the
caller's user id and the key.

The claim lives PENDING_S until the transaction storing the session keeps it for
MEOWSTIK_IDEMPOTENCY_TTL_S, so a claim left behind by a submit that could not give it up (Redis
unreachable, or a failover that kept the claim but lost the session) expires while a replay
waits for it, and that replay submits. A submit whose session was stored but not confirmed by
enough replicas (ReplicaAckTimeoutError, a 503) keeps its key: the client's retry with the key
gets that session back, never a second one."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace

from orchestrator.core.errors import (
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    ReplicaAckTimeoutError,
    SessionNotFoundError,
)
from orchestrator.core.models import OrchestrateRequest, SessionSnapshot
from orchestrator.engine.context import EngineContext
from orchestrator.engine.queries import Queries
from orchestrator.engine.submission import Submission, new_session_id
from orchestrator.store.idempotency import ClaimedKey

# how long a replay waits for the first request to store its session (planning takes
# milliseconds; an LLM planner may take seconds)
WAIT_S = 30.0
# how long a claim waits for its session to be stored (then the key is kept for its full TTL):
# shorter than WAIT_S, so a replay waiting on a claim whose submit died outlives it, and a claim
# older than WAIT_S without its session can only be one whose session was stored, then removed
PENDING_S = 25
_POLL_S = (0.005, 0.01, 0.02, 0.05, 0.1)


def request_digest(request: OrchestrateRequest) -> str:
    """The body as validated, defaults included, in canonical JSON: the same request however
    it was spelled (key order, whitespace, defaults left out)."""
    canonical = json.dumps(
        request.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def key_scope(user_id: str | None, key: str) -> str:
    return hashlib.sha256(f"{user_id or ''}\x00{key}".encode()).hexdigest()[:40]


def created_ms(session_id: str) -> int | None:
    """The creation time new_session_id put in an id (orch-<ms>-<hex>), or None."""
    parts = session_id.split("-")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


class Idempotency:
    def __init__(self, context: EngineContext, submission: Submission, queries: Queries) -> None:
        self.context = context
        self.submission = submission
        self.queries = queries
        self.store = context.sessions.idempotency

    def submit(
        self, request: OrchestrateRequest, key: str, user_id: str | None
    ) -> tuple[SessionSnapshot, bool]:
        """The session for ``key``: created now (False) or an earlier one (True, a replay).

        Raises IdempotencyKeyReusedError (422) for the key with another body,
        IdempotencyInProgressError (409) when the first request has not stored its session
        within WAIT_S, ReplicaAckTimeoutError (503) when too few replicas confirm the session
        in time (created now or replayed: the key keeps naming it), and what submit raises."""
        digest = request_digest(request)
        scope = key_scope(user_id, key)
        sid = new_session_id(self.context.now_ms())
        claimed = ClaimedKey(scope, digest, sid, self.context.settings.idempotency_ttl_s)
        started = time.monotonic()
        polls = 0
        while True:
            held = self.store.claim(scope, digest, sid, PENDING_S)
            if held is None:
                try:
                    return self.submission.submit(request, session_id=sid, claim=claimed), False
                except ReplicaAckTimeoutError:
                    raise  # stored on the master: the key must lead the retry to it
                except BaseException:
                    self.store.release(scope, sid)
                    raise
            held_digest, held_sid = held
            if held_digest != digest:
                raise IdempotencyKeyReusedError(held_sid)
            snapshot = self._stored(held_sid, started)
            if snapshot is not None:
                self._confirm(replace(claimed, session_id=held_sid))
                return snapshot, True
            time.sleep(_POLL_S[min(polls, len(_POLL_S) - 1)])
            polls += 1

    def _stored(self, held_sid: str, started: float) -> SessionSnapshot | None:
        """The session the key names, or None while its first request may still store it."""
        try:
            return self.queries.snapshot(held_sid)
        except SessionNotFoundError:
            waited = time.monotonic() - started
            made = created_ms(held_sid)
            if made is not None and self.context.now_ms() - made > WAIT_S * 1000:
                raise  # stored long ago, since removed by retention: say it is gone
            if waited >= WAIT_S:
                raise IdempotencyInProgressError(held_sid, round(waited, 1)) from None
            return None

    def _confirm(self, held: ClaimedKey) -> None:
        """A replay answers once the replicas have the session, as its first request did
        (that one may have answered 503 replica_ack_timeout)."""
        try:
            self.store.confirm(held)
        except ReplicaAckTimeoutError as unconfirmed:
            unconfirmed.details["sessionId"] = held.session_id
            raise
