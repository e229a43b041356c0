"""The application factory. Everything the views need lives in ``app.extensions["meowstik"]``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask
from flask.json.provider import DefaultJSONProvider

from api import auth
from api import tracing as api_tracing
from api.errors import register_error_handlers
from orchestrator import tracing
from orchestrator.core.dispatch import Dispatcher
from orchestrator.core.prices import load_prices
from orchestrator.engine.agents import Agents
from orchestrator.engine.costs import Costs
from orchestrator.engine.facade import Engine
from orchestrator.engine.transcripts import Transcripts
from orchestrator.engine.wiring import build_engine
from orchestrator.jsonlog import configure_logging
from orchestrator.planning.service import Planning
from orchestrator.planning.templates import load_templates
from orchestrator.settings import Settings
from orchestrator.store.connection import client_for
from orchestrator.store.costs import CostLedger
from orchestrator.store.deltas import DeltaStream
from orchestrator.store.keys import Keys
from orchestrator.store.logbook import Logbook
from orchestrator.store.metrics import MetricsReader
from orchestrator.store.ratelimit import RateLimiter
from orchestrator.store.redis_clock import RedisClock
from orchestrator.store.redis_health import EvictionGuard, RedisHealth
from orchestrator.store.turns import TurnJournal
from orchestrator.store.workers import WorkerRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """What the views use (through ``api.routes.services()``): the engine, the agents service
    and the store objects they read. No Redis client: routes never reach Redis themselves."""

    settings: Settings
    engine: Engine
    agents: Agents
    logbook: Logbook
    deltas: DeltaStream
    transcripts: Transcripts
    costs: Costs
    metrics: MetricsReader
    workers: WorkerRegistry
    limiter: RateLimiter
    health: RedisHealth


def build_planning(settings: Settings) -> Planning:
    """The planners: templates from the built-in and configured folders, and the LLM planner
    when MEOWSTIK_LLM_BASE_URL is set. Template files that fail to load are logged; a malformed
    MEOWSTIK_LLM_ENDPOINTS stops the start (ConfigurationError naming the entry)."""
    settings.llm_endpoint_table()
    templates = load_templates(settings.template_directories)
    for problem in templates.problems:
        log.warning("workflow template not loaded: %s", problem["message"])
    chat = None
    if settings.llm_base_url:
        from workers.executors.llm import ChatClient

        api_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        chat = ChatClient(
            settings.llm_base_url,
            settings.llm_model,
            api_key,
            settings.llm_timeout_s,
            max_retries=settings.http_agent_max_retries,
        )
    return Planning(settings, templates, chat)


def create_app(
    settings: Settings | None = None,
    *,
    redis_client: redis.Redis | None = None,
    dispatcher: Dispatcher | None = None,
    test_config: dict[str, Any] | None = None,
) -> Flask:
    """Build the API. With no arguments (as under gunicorn) it reads MEOWSTIK_* settings,
    connects to Redis, and publishes steps with Celery.

    Raises:
        EvictionPolicyError: Redis's maxmemory-policy may evict keys (anything but noeviction)
            and MEOWSTIK_REDIS_ALLOW_EVICTION is not set. A Redis that does not answer yet is
            not waited for: /healthz checks it on every call.
    """
    if settings is None:  # a real process (gunicorn): log JSON lines like the workers
        settings = Settings()
        configure_logging(settings.log_format)
    tokens = settings.token_table()  # a malformed entry stops the start, naming it
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes, JSON_SORT_KEYS=False)
    if isinstance(app.json, DefaultJSONProvider):
        app.json.sort_keys = False
    if test_config:
        app.config.update(test_config)
    tracing.configure(settings, tracing.API_SERVICE)  # MEOWSTIK_TRACING: orchestrator/tracing.py
    api_tracing.install(app)  # first of the request hooks: the span covers auth and limits too
    client = redis_client or client_for(
        settings,
        socket_timeout=5,
        socket_connect_timeout=0.5,
        health_check_interval=30,
    )
    EvictionGuard(client, settings.redis_allow_eviction, "the API").check_at_start()
    clock = RedisClock(client)  # times the workers compare with, so Redis's
    if dispatcher is None:
        from workers.celery_app import create_celery_app
        from workers.dispatcher import CeleryDispatcher

        dispatcher = CeleryDispatcher(create_celery_app(settings), clock)
    keys = Keys(settings.key_prefix)
    from workers.tools.catalog import load_tools  # the tool names registrations are checked by

    wired = build_engine(
        settings,
        client,
        dispatcher,
        clock=clock,
        planning=build_planning(settings),
        keys=keys,
        tool_names=load_tools(settings).names(),
    )
    limiter = RateLimiter(client, keys, settings.rate_limit_per_minute, settings.rate_limit_burst)
    app.extensions["meowstik"] = Services(
        settings=settings,
        engine=wired.engine,
        agents=wired.agents,
        logbook=wired.logbook,
        deltas=DeltaStream(client, keys),
        transcripts=Transcripts(wired.context.sessions, TurnJournal(client, keys)),
        costs=Costs(
            CostLedger(client, keys),
            load_prices(settings.prices_file),
            settings.cost_history_days,
        ),
        metrics=MetricsReader(client, keys, wired.registry),
        workers=WorkerRegistry(client, keys),
        limiter=limiter,
        health=RedisHealth(client, settings.redis_allow_eviction),
    )

    from api.openapi import MODULES  # the route modules: one list for routes and their docs

    for module in MODULES:
        if module is not auth:  # auth.install registers its pages with its hooks, below
            app.register_blueprint(module.blueprint)
    register_error_handlers(app)
    auth.install(app, settings, tokens, limiter)
    return app
