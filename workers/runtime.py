"""What a worker process does with one step message: choose a hosted agent, claim the step,
run the agent while renewing the lease, record the outcome. One runtime per process (prefork
children each build their own Redis connection after the fork)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence

import redis
from celery import Celery

from orchestrator.dispatch import StepDispatch
from orchestrator.errors import PermanentStepError
from orchestrator.execution import Skip, StepLifecycle, StepRun
from orchestrator.models import StepError
from orchestrator.selection import select_agent
from orchestrator.settings import Settings
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.keys import Keys, agent_queue, job_id
from orchestrator.store.logbook import LogEntry, iso_from_ms
from orchestrator.store.sessions import SessionStore
from workers.agents.base import Agent, coerce_result
from workers.dispatcher import CeleryDispatcher

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews a run's lease every third of its length while the agent works."""

    def __init__(self, lifecycle: StepLifecycle, run: StepRun) -> None:
        self._lifecycle = lifecycle
        self._run = run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lease-keeper", daemon=True)
        self.lost = False

    def _loop(self) -> None:
        interval_s = self._lifecycle.settings.lease_s / 3
        while not self._stop.wait(interval_s):
            try:
                if not self._lifecycle.renew(self._run):
                    self.lost = True
                    return
            except redis.RedisError:
                log.warning("lease renewal failed for %s; retrying", self._run.step_id)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


class WorkerRuntime:
    def __init__(
        self,
        settings: Settings,
        agents: Mapping[str, Agent],
        client: redis.Redis,
        dispatcher: CeleryDispatcher,
    ) -> None:
        keys = Keys(settings.key_prefix)
        self.agents = dict(agents)
        self.sessions = SessionStore(client, keys)
        self.registry = AgentRegistry(client, keys)
        self.dispatcher = dispatcher
        self.lifecycle = StepLifecycle(self.sessions, dispatcher, settings)

    def execute(
        self, session_id: str, step_id: str, capabilities: Sequence[str], agent_type: str | None
    ) -> Skip | None:
        """Run the step on a hosted agent, or forward it. Returns a Skip when it did not run."""
        local = select_agent(
            (a.definition for a in self.agents.values()), capabilities, agent_type, check_load=False
        )
        if local is None:
            return self._forward(session_id, step_id, capabilities, agent_type)
        run = self.lifecycle.begin(session_id, step_id, local.id)
        if isinstance(run, Skip):
            self._record_skip(session_id, step_id, local.id, run)
            return run
        agent = self.agents[local.id]
        with LeaseKeeper(self.lifecycle, run):
            try:
                result = coerce_result(agent.run(run.step_input))
            except Exception as exc:  # noqa: BLE001 - any agent failure is recorded on the step
                self.lifecycle.fail(run, exc)
                return None
        self.lifecycle.succeed(run, result)
        return None

    def _record_skip(self, session_id: str, step_id: str, agent_id: str, skip: Skip) -> None:
        """A delivery that must not run (duplicate, late, or session over) is logged, not run."""
        log.info("not running %s/%s: %s", session_id, step_id, skip.reason)
        if skip.reason.startswith("missing"):
            return
        data = {"reason": skip.reason}
        if skip.retry_after_s is not None:
            data["retryAfterS"] = round(skip.retry_after_s, 3)
        self.sessions.log(
            LogEntry(
                "info",
                "orchestrator",
                "Delivery not run",
                session_id=session_id,
                agent_id=agent_id,
                task_id=step_id,
                data=data,
            ),
            self.lifecycle.now_ms(),
        )

    def _forward(
        self, session_id: str, step_id: str, capabilities: Sequence[str], agent_type: str | None
    ) -> Skip:
        """This worker hosts no agent for the step: send it to the queue of one that can."""
        registered = self.registry.list()
        target = select_agent(registered, capabilities, agent_type, check_load=False) or next(
            (
                a
                for a in registered
                if set(capabilities) <= a.capability_names and agent_type in (None, a.type)
            ),
            None,
        )
        now = self.lifecycle.now_ms()
        if target is None:
            message = f"no registered agent has capabilities {sorted(capabilities)}" + (
                f" and type {agent_type}" if agent_type else ""
            )
            error = PermanentStepError(message)
            self.sessions.fail(
                session_id,
                step_id,
                token="",
                now_ms=now,
                message=message,
                error_json=_error_json(session_id, step_id, error, now),
                agent_id=None,
            )
            return Skip("unroutable")
        queue = agent_queue(target.id)
        self.dispatcher.dispatch(
            [
                StepDispatch(
                    session_id,
                    step_id,
                    job_id(session_id, step_id),
                    queue,
                    tuple(capabilities),
                    agent_type,
                )
            ]
        )
        self.sessions.log(
            LogEntry(
                "info",
                "orchestrator",
                f"Step forwarded to {queue}",
                session_id=session_id,
                task_id=step_id,
                agent_id=target.id,
            ),
            now,
        )
        return Skip(f"forwarded:{queue}")


def _error_json(session_id: str, step_id: str, error: Exception, now_ms: int) -> str:
    return StepError(
        step_id=step_id,
        job_id=job_id(session_id, step_id),
        error_type=type(error).__name__,
        message=str(error),
        attempt=0,
        timestamp=iso_from_ms(now_ms) or "",
    ).model_dump_json(by_alias=True)


_RUNTIMES: dict[int, WorkerRuntime] = {}


def runtime_for(app: Celery) -> WorkerRuntime:
    """This process's runtime, built on first use after a fork."""
    pid = os.getpid()
    runtime = _RUNTIMES.get(pid)
    if runtime is None:
        settings: Settings = app.conf.meowstik_settings
        client = redis.Redis.from_url(settings.effective_redis_url, health_check_interval=30)
        runtime = WorkerRuntime(
            settings, app.conf.meowstik_hosted_agents, client, CeleryDispatcher(app)
        )
        _RUNTIMES.clear()
        _RUNTIMES[pid] = runtime
    return runtime
