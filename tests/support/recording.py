"""A Dispatcher twin that records what would have been published."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.core.dispatch import StepDispatch
from orchestrator.core.errors import DispatchError


class RecordingDispatcher:
    def __init__(self, *, fail: bool = False) -> None:
        self.sent: list[tuple[StepDispatch, float]] = []
        self.revoked: list[str] = []
        self.fail = fail

    def dispatch(self, dispatches: Sequence[StepDispatch], countdown_s: float = 0.0) -> None:
        if self.fail:
            raise DispatchError("broker down (test)", details={})
        self.sent.extend((item, countdown_s) for item in dispatches)

    def revoke(self, job_ids: Sequence[str]) -> None:
        self.revoked.extend(job_ids)

    @property
    def step_ids(self) -> list[str]:
        return [item.step_id for item, _ in self.sent]


class ManualClock:
    def __init__(self, start_s: float = 1_700_000_000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds
