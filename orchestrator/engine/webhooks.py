"""Webhooks: when a session with a ``callbackUrl`` ends, its final summary is POSTed there.

The script that ends the session adds "<session id>|<end ms>" to the outbox in the same step, so
an ending is never missed. Workers deliver what is due (``Webhooks.run_once``): each entry is
claimed for a lease (one worker at a time), POSTed with ``X-Meowstik-Signature`` (when
MEOWSTIK_SIGNING_SECRETS is set), ``X-Meowstik-Delivery`` (the same id on every attempt, so a
receiver can drop repeats: delivery is at least once) and ``X-Meowstik-Event:
session.finished``, through the HTTP agents' address guard. Every attempt is recorded before the
entry moves on: delivered and abandoned entries leave the outbox, failed ones come back after a
backoff (MEOWSTIK_WEBHOOK_BACKOFF_S doubling, at most 5 minutes) until MEOWSTIK_WEBHOOK_RETRY_S
after the ending. A retried session that ends again is a new delivery."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.core.errors import OrchestratorError, SessionNotFoundError
from orchestrator.core.logentry import LogEntry, iso_from_ms
from orchestrator.core.snapshots import build_snapshot
from orchestrator.engine.context import EngineContext

MAX_BACKOFF_S = 300.0
# what a delivery leaves out of the snapshot: the plan and per-step records are large, and GET
# .../sessions/<id> has them
LEFT_OUT = ("plan", "steps", "jobIds")
EVENT = "session.finished"


@dataclass(frozen=True)
class Reply:
    status: int


# (url, JSON payload, headers, timeout s) -> the 2xx reply; raises on anything else
Post = Callable[[str, Mapping[str, Any], Mapping[str, str], float], Reply]


def delivery_id(entry: str) -> str:
    session_id, _, ended_ms = entry.partition("|")
    return f"{session_id}.{ended_ms}"


def backoff_ms(attempt: int, first_s: float) -> int:
    return int(min(MAX_BACKOFF_S, first_s * 2 ** (attempt - 1)) * 1000)


class Webhooks:
    def __init__(self, context: EngineContext, post: Post | None = None) -> None:
        """``post``: how to send (the workers' transport); None where nothing is delivered
        (the API reads the deliveries)."""
        self.context = context
        self.store = context.sessions.webhooks
        self._post = post

    def post(
        self, url: str, payload: Mapping[str, Any], headers: Mapping[str, str], timeout_s: float
    ) -> Reply:
        if self._post is None:
            raise RuntimeError("this Webhooks reads deliveries only; give it a post to deliver")
        return self._post(url, payload, headers, timeout_s)

    def payload(self, session_id: str, entry: str) -> dict[str, Any] | None:
        record = self.context.sessions.read(session_id)
        if record is None:
            return None
        session = build_snapshot(session_id, record).to_json_dict()
        for name in LEFT_OUT:
            session.pop(name, None)
        return {"type": EVENT, "deliveryId": delivery_id(entry), "session": session}

    def run_once(self, limit: int = 20) -> int:
        """Deliver (or retry) what is due; returns how many attempts were made."""
        settings = self.context.settings
        lease_ms = int((settings.webhook_timeout_s + 30) * 1000)
        made = 0
        for entry in self.store.due(self.context.now_ms(), limit):
            if self.store.claim(entry, self.context.now_ms(), lease_ms):
                self.deliver(entry)
                made += 1
        return made

    def deliver(self, entry: str) -> None:
        settings = self.context.settings
        session_id, _, ended = entry.partition("|")
        ident = delivery_id(entry)
        attempt = 1 + sum(1 for a in self.store.attempts(session_id) if a["deliveryId"] == ident)
        url = self.store.callback(session_id)
        payload = self.payload(session_id, entry)
        started = self.context.now_ms()
        record: dict[str, Any] = {
            "deliveryId": ident,
            "attempt": attempt,
            "at": iso_from_ms(started),
            "url": url,
        }
        if url is None or payload is None:  # removed by retention meanwhile
            record.update(status="abandoned", error="the session no longer exists")
            self.store.record(entry, record, None)
            return
        headers = {"X-Meowstik-Delivery": ident, "X-Meowstik-Event": EVENT}
        clock = time.monotonic()
        try:
            reply = self.post(url, payload, headers, settings.webhook_timeout_s)
        except (OrchestratorError, OSError) as exc:  # refused, unreachable, a non-2xx answer
            record["durationMs"] = round((time.monotonic() - clock) * 1000)
            record["error"] = getattr(exc, "message", None) or str(exc)
            status = getattr(exc, "details", {}).get("status")
            if status is not None:
                record["httpStatus"] = status
            next_ms = started + backoff_ms(attempt, settings.webhook_backoff_s)
            if next_ms - int(ended) > settings.webhook_retry_s * 1000:
                record["status"] = "abandoned"
                self.store.record(entry, record, None)
                self._log("error", "Webhook abandoned", session_id, record)
            else:
                record["status"] = "failed"
                record["nextAttemptAt"] = iso_from_ms(next_ms)
                self.store.record(entry, record, next_ms)
                self._log("warn", "Webhook delivery failed", session_id, record)
            return
        record["durationMs"] = round((time.monotonic() - clock) * 1000)
        record.update(status="delivered", httpStatus=reply.status)
        self.store.record(entry, record, None)
        self._log("info", "Webhook delivered", session_id, record)

    def deliveries(self, session_id: str) -> dict[str, Any]:
        """GET .../sessions/<id>/deliveries: the callback URL, every attempt, and what is still
        to be tried."""
        if not self.store.exists(session_id):
            raise SessionNotFoundError(session_id)
        attempts = self.store.attempts(session_id)
        pending = [
            {"deliveryId": delivery_id(entry), "nextAttemptAt": iso_from_ms(due)}
            for entry, due in self.store.pending(session_id)
        ]
        return {
            "sessionId": session_id,
            "callbackUrl": self.store.callback(session_id),
            "deliveries": attempts,
            "count": len(attempts),
            "pending": pending,
        }

    def _log(self, level: str, message: str, session_id: str, record: Mapping[str, Any]) -> None:
        data = {k: v for k, v in record.items() if k != "url"}
        self.context.log(LogEntry(level, "orchestrator", message, session_id=session_id, data=data))
