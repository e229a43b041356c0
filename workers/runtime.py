"""What a worker process does with one step message: claim the step for its agent, run the agent
while renewing the lease and within its time limit (workers/time_limits.py), record the outcome.
One runtime per process (prefork children each build their own Redis connection after the
fork)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from functools import partial

import redis
import requests
from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import (
    AgentNotFoundError,
    OrchestratorError,
    RetryableStepError,
    StoreUnavailableError,
)
from orchestrator.core.logentry import LogEntry
from orchestrator.core.models import AgentDefinition, AgentExecutor
from orchestrator.core.statuses import AgentStatus
from orchestrator.core.step_runs import Skip, StepRun
from orchestrator.core.steps import InputRequired
from orchestrator.engine.budgets import Budgets, CallRefused
from orchestrator.engine.routing import RouteRequest
from orchestrator.engine.timeouts import ABANDONED, SOFT_LIMIT
from orchestrator.engine.wiring import build_engine
from orchestrator.settings import Settings
from orchestrator.store.connection import client_for
from orchestrator.store.costs import CostLedger
from orchestrator.store.deltas import DeltaStream
from orchestrator.store.keys import Keys
from orchestrator.store.redis_clock import RedisClock
from orchestrator.store.turns import TurnJournal
from workers.agents.base import Agent, coerce_result
from workers.dispatcher import CeleryDispatcher
from workers.lease_keeper import LeaseKeeper
from workers.model_binding import ModelBinder
from workers.resources import PeakRss
from workers.store_retry import StoreRetry
from workers.time_limits import RunLimits, SoftLimitWindow
from workers.tools.catalog import load_tools

log = logging.getLogger(__name__)

# Network hiccups raised inside agent code by the clients agents commonly use: worth a retry.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    StoreUnavailableError,
    requests.ConnectionError,
    requests.Timeout,
)


NO_LIMITS = RunLimits()


def _ids(run: StepRun) -> dict[str, str]:
    """A run's ids, for log records."""
    return {"sessionId": run.session_id, "stepId": run.step_id, "agentId": run.agent_id}


class RunBudget:
    """The session's budget as one run's model calls meet it (tool_loop.CallBudget)."""

    def __init__(self, budgets: Budgets, run: StepRun) -> None:
        self._budgets, self._run = budgets, run

    def before_call(self, hold: str, model: str) -> None:
        run = self._run
        self._budgets.before_call(
            run.session_id, run.step_id, run.agent_id, token=run.token, hold=hold, model=model
        )

    def release(self, hold: str) -> None:
        try:
            self._budgets.release_hold(self._run.session_id, hold)
        except StoreUnavailableError:  # the hold expires by itself
            log.warning("could not release a budget hold", extra={"stepId": self._run.step_id})


class UnusableAgent(Agent):
    """A registered agent that cannot be built here (e.g. no LLM configured): its steps fail
    with the reason, through the normal failure path (fallback, then the step's error)."""

    def __init__(self, definition: AgentDefinition, error: Exception) -> None:
        self.definition = definition
        self._error = error

    def run(self, step_input):
        raise self._error


def build_remote_agent(definition: AgentDefinition, settings: Settings) -> Agent:
    """An HTTP or LLM agent from its registry record."""
    try:
        if definition.executor == AgentExecutor.HTTP:
            from workers.executors.http_agent import HttpAgent

            return HttpAgent(definition, settings)
        from workers.executors.llm import LlmAgent

        return LlmAgent(definition, settings)
    except OrchestratorError as exc:
        return UnusableAgent(definition, exc)


class WorkerRuntime:
    def __init__(
        self,
        settings: Settings,
        agents: Mapping[str, Agent],
        client: redis.Redis,
        dispatcher: CeleryDispatcher,
        *,
        remote: bool = False,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        wired = build_engine(settings, client, dispatcher, clock=clock)
        keys = Keys(settings.key_prefix)
        self.models = ModelBinder(
            settings,
            load_tools(settings),
            TurnJournal(client, keys, history_days=settings.cost_history_days),
            deltas=DeltaStream(client, keys).writer,
            fleet_capabilities=self._fleet_capabilities,
            now_ms=wired.context.now_ms,
        )
        self.costs = CostLedger(client, keys, history_days=settings.cost_history_days)
        self.peak_rss = PeakRss()
        self.retry = StoreRetry(settings.worker_store_retry_s)  # claim and outcome writes
        self.settings = settings
        self.agents = dict(agents)
        self.remote = remote
        self.context = wired.context
        self.sessions = wired.sessions
        self.registry = wired.registry
        self.router = wired.router
        self.lifecycle = wired.lifecycle

    def execute(
        self,
        session_id: str,
        step_id: str,
        agent_id: str | None,
        limits: RunLimits = NO_LIMITS,
    ) -> Skip | None:
        """Run the step on the agent it was routed to, with the run token and timeout the
        worker's main process chose (``limits``). Returns a Skip when it did not run. The claim
        and the outcome are retried while Redis does not answer or refuses writes."""
        ids = {"sessionId": session_id, "stepId": step_id, "agentId": agent_id or ""}
        agent = self._resolve(agent_id) if agent_id else None
        if agent is None:
            reroute = partial(self._reroute, session_id, step_id, agent_id)
            return self.retry.call(reroute, "route the step again", ids)
        with SoftLimitWindow() as window:
            begin = partial(
                self.lifecycle.begin, session_id, step_id, agent.definition.id, token=limits.token
            )
            run = self.retry.call(begin, "claim the step", ids)
            if isinstance(run, Skip):
                self._record_skip(session_id, step_id, agent.definition.id, run)
                if run.reason == "full":
                    reroute = partial(self._reroute, session_id, step_id, agent_id)
                    self.retry.call(reroute, "route the step again", ids)
                return run
            run = replace(run, step_input=replace(run.step_input, timeout_s=limits.timeout_s))
            self._run(agent, run, limits.timeout_s, window)
        return None

    def _run(
        self, agent: Agent, run: StepRun, timeout_s: float | None, window: SoftLimitWindow
    ) -> None:
        """Run the agent while its lease is renewed, then record what came of it. Where no
        soft limit can reach the agent (threads and solo pools) the lease keeper abandons the
        run at its timeout and records that; the run's late outcome is then dropped."""
        keeper = self._lease_keeper(run, timeout_s, window)
        model, result, error = None, None, None
        self.peak_rss.start()
        started_cpu_s, started_s = time.thread_time(), time.monotonic()
        with keeper:
            try:
                budget = RunBudget(self.lifecycle.budgets, run)
                step_input, model = self.models.bind(agent.definition, run.step_input, budget)
                run = replace(run, step_input=step_input)
                with window.agent():
                    output = agent.run(run.step_input)
                result = coerce_result(output)
            except Exception as exc:  # noqa: BLE001 - any agent failure is recorded on the step
                error = exc
            finally:
                if model is not None:
                    model.close()
                self._count_run(run, started_cpu_s, started_s)
        if keeper.abandoned:
            self._drop_late_outcome(run)
        elif error is not None:
            timed_out = window.fired or isinstance(error, SoftTimeLimitExceeded)
            settle = partial(self._settle_error, run, error, timeout_s if timed_out else None)
            self.retry.call(settle, "record the failure", _ids(run))
        elif result is not None:
            usage = model.usage.document() if model is not None else None
            succeed = partial(self.lifecycle.succeed, run, result, usage)
            transition = self.retry.call(succeed, "record the output", _ids(run))
            log.info(
                "step %s",
                "completed" if transition.code == "ok" else transition.code,
                extra=_ids(run),
            )

    def _lease_keeper(
        self, run: StepRun, timeout_s: float | None, window: SoftLimitWindow
    ) -> LeaseKeeper:
        """The run's lease keeper; where no soft limit will come (``window`` not enforced), one
        that abandons the run at its timeout and records that."""
        if timeout_s is None or window.enforced:
            return LeaseKeeper(self.lifecycle, run)
        record = partial(self.lifecycle.timeouts.time_out, run, timeout_s, stopped_by=ABANDONED)
        return LeaseKeeper(
            self.lifecycle, run, abandon_at_s=time.monotonic() + timeout_s, on_abandon=record
        )

    def _settle_error(self, run: StepRun, exc: Exception, timed_out_s: float | None) -> None:
        """Record what an agent raised; ``timed_out_s``: it raised because its soft time limit
        (that many seconds) reached it."""
        if isinstance(exc, CallRefused):  # parked on the budget, or the run is over
            log.info("model call refused: %s", exc, extra=_ids(run))
        elif isinstance(exc, InputRequired):
            self.lifecycle.await_input(run, exc)
        elif timed_out_s is not None:
            log.info("step timed out after %g s", timed_out_s, extra=_ids(run))
            self.lifecycle.timeouts.time_out(run, timed_out_s, stopped_by=SOFT_LIMIT)
        elif isinstance(exc, TRANSIENT_ERRORS):
            self.lifecycle.fail(run, RetryableStepError(f"{type(exc).__name__}: {exc}"))
        else:
            log.info("step raised %s", type(exc).__name__, extra=_ids(run))
            self.lifecycle.fail(run, exc)

    def _drop_late_outcome(self, run: StepRun) -> None:
        """An abandoned run's agent returned after its timeout was recorded: its outcome is not
        recorded (the step was retried or failed meanwhile); say so in the session's log."""
        log.info("dropping the outcome of a run that timed out", extra=_ids(run))
        try:
            self.context.log(
                LogEntry(
                    "info",
                    "task",
                    "Timed-out run ended; its outcome is dropped",
                    session_id=run.session_id,
                    agent_id=run.agent_id,
                    task_id=run.step_id,
                    data={"attempt": run.attempt},
                )
            )
        except StoreUnavailableError:
            log.warning("could not log a dropped outcome", extra=_ids(run))

    def _count_run(self, run: StepRun, started_cpu_s: float, started_s: float) -> None:
        """The run's CPU time (of the thread that ran it, so a thread pool's other steps do not
        count; threads the agent starts itself do not either), wall time and peak resident set
        (workers/resources.py), with the session's costs. Best effort: Redis down loses only
        this."""
        cpu_s, wall_s = time.thread_time() - started_cpu_s, time.monotonic() - started_s
        peak_rss_kb = self.peak_rss.stop()
        try:
            self.costs.add_run(
                run.session_id,
                run.step_id,
                run.agent_id,
                cpu_s=cpu_s,
                wall_s=wall_s,
                peak_rss_kb=peak_rss_kb,
                now_ms=self.lifecycle.now_ms(),
            )
        except StoreUnavailableError:
            log.warning("could not count the run's CPU time", extra={"stepId": run.step_id})

    def _fleet_capabilities(self) -> list[str]:
        """The capabilities of the active agents (what a planner may decompose over)."""
        agents = self.registry.list(self.lifecycle.now_ms())
        active = [agent for agent in agents if agent.status == AgentStatus.ACTIVE]
        return sorted({name for agent in active for name in agent.capability_names})

    def _resolve(self, agent_id: str) -> Agent | None:
        if agent_id in self.agents:
            return self.agents[agent_id]
        if not self.remote:
            return None
        try:
            definition = self.registry.get(agent_id, self.lifecycle.now_ms())
        except AgentNotFoundError:  # deleted meanwhile: the step is routed again
            return None
        if definition.executor == AgentExecutor.PYTHON:
            return None
        return build_remote_agent(definition, self.settings)

    def _reroute(self, session_id: str, step_id: str, agent_id: str | None) -> Skip:
        """The message names no agent this worker runs (or the agent was full): route again."""
        record = self.sessions.step_record(session_id, step_id)
        if not record or record.get("status") != "queued":
            return Skip("not_routable_here")
        if agent_id:
            handed = self.sessions.release_slot(
                agent_id,
                session_id,
                step_id,
                now_ms=self.lifecycle.now_ms(),
                reserve_ms=self.context.reserve_ms,
            )
            self.router.dispatch_handoffs(handed)
        self.router.route(session_id, [RouteRequest.from_record(step_id, record)])
        return Skip("rerouted")

    def _record_skip(self, session_id: str, step_id: str, agent_id: str, skip: Skip) -> None:
        """A delivery that must not run (duplicate, late, or session over) is logged, not run."""
        log.info(
            "not running: %s",
            skip.reason,
            extra={"sessionId": session_id, "stepId": step_id, "agentId": agent_id},
        )
        if skip.reason.startswith("missing"):
            return
        data: dict = {"reason": skip.reason}
        if skip.retry_after_s is not None:
            data["retryAfterS"] = round(skip.retry_after_s, 3)
        entry = LogEntry(
            "info",
            "orchestrator",
            "Delivery not run",
            session_id=session_id,
            agent_id=agent_id,
            task_id=step_id,
            data=data,
        )
        try:
            self.sessions.log(entry, self.lifecycle.now_ms())
        except StoreUnavailableError:  # a note in the session's log: not worth holding the run
            log.warning("could not log a delivery not run", extra={"stepId": step_id})


_RUNTIMES: dict[int, WorkerRuntime] = {}


def runtime_for(app: Celery) -> WorkerRuntime:
    """This process's runtime, built on first use after a fork, on Redis's clock (measured by
    this process: orchestrator/store/redis_clock.py)."""
    pid = os.getpid()
    runtime = _RUNTIMES.get(pid)
    if runtime is None:
        settings: Settings = app.conf.meowstik_settings
        client = client_for(settings, health_check_interval=30)
        clock = RedisClock(client)
        runtime = WorkerRuntime(
            settings,
            app.conf.meowstik_hosted_agents,
            client,
            CeleryDispatcher(app, clock),
            remote=bool(app.conf.get("meowstik_remote", False)),
            clock=clock,
        )
        _RUNTIMES.clear()
        _RUNTIMES[pid] = runtime
    return runtime
