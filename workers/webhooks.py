"""The webhook deliverer of a worker process: a daemon thread that delivers due webhooks
(orchestrator/engine/webhooks.py) every half second, through the HTTP agents' transport (address
guard, allowlist checked again at delivery, signatures)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from orchestrator.core.registration import check_agent_endpoint
from orchestrator.engine.context import EngineContext
from orchestrator.engine.webhooks import Reply, Webhooks
from orchestrator.settings import Settings
from workers.executors.transport import describe_url, post_json

log = logging.getLogger(__name__)
INTERVAL_S = 0.5


def transport_post(settings: Settings):
    def post(
        url: str, payload: Mapping[str, Any], headers: Mapping[str, str], timeout_s: float
    ) -> Reply:
        allowed = check_agent_endpoint(url, settings)
        reply = post_json(
            allowed,
            dict(payload),
            service=f"webhook {describe_url(allowed)}",
            timeout_s=timeout_s,
            max_retries=0,  # the outbox retries, with a record of each attempt
            headers=dict(headers),
            guard_addresses=True,
            signing_keys=settings.signing_keys,
        )
        return Reply(reply.status)

    return post


class Deliverer:
    def __init__(self, context: EngineContext, settings: Settings) -> None:
        self.webhooks = Webhooks(context, transport_post(settings))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name="meowstik-webhooks", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            try:
                while self.webhooks.run_once() and not self._stop.is_set():
                    pass
            except Exception as exc:  # noqa: BLE001 - a missed round is retried next time
                log.warning("webhook delivery round failed: %s", exc)
