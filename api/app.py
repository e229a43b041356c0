"""The application factory. Everything the views need lives in ``app.extensions["meowstik"]``."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask

from api import auth
from api.errors import register_error_handlers
from orchestrator.core.dispatch import Dispatcher
from orchestrator.engine.routing import Router
from orchestrator.engine.submission import Engine
from orchestrator.jsonlog import configure_logging
from orchestrator.planning.service import Planning
from orchestrator.planning.templates import load_templates
from orchestrator.settings import Settings
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.connection import client_for
from orchestrator.store.keys import Keys
from orchestrator.store.logbook import Logbook
from orchestrator.store.ratelimit import RateLimiter
from orchestrator.store.sessions import SessionStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    settings: Settings
    client: redis.Redis
    engine: Engine
    registry: AgentRegistry
    logbook: Logbook


def build_planning(settings: Settings) -> Planning:
    """The planners: templates from the built-in and configured folders, and the LLM planner
    when MEOWSTIK_LLM_BASE_URL is set. Template files that fail to load are logged."""
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
    connects to Redis, and publishes steps with Celery."""
    if settings is None:  # a real process (gunicorn): log JSON lines like the workers
        settings = Settings()
        configure_logging(settings.log_format)
    tokens = settings.token_table()  # a malformed entry stops the start, naming it
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes, JSON_SORT_KEYS=False)
    app.json.sort_keys = False
    if test_config:
        app.config.update(test_config)
    client = redis_client or client_for(
        settings,
        socket_timeout=5,
        socket_connect_timeout=0.5,
        health_check_interval=30,
    )
    if dispatcher is None:
        from workers.celery_app import create_celery_app
        from workers.dispatcher import CeleryDispatcher

        dispatcher = CeleryDispatcher(create_celery_app(settings))
    keys = Keys(settings.key_prefix)
    logbook = Logbook(client, keys)
    registry = AgentRegistry(client, keys)
    router = Router(SessionStore(client, keys, logbook), registry, dispatcher, settings)
    engine = Engine(router, planning=build_planning(settings), clock=time.time)
    app.extensions["meowstik"] = Services(settings, client, engine, registry, logbook)

    from api.routes import (
        agents,
        dashboard,
        docs,
        flower,
        health,
        logs,
        metrics,
        orchestrator,
        plans,
    )

    app.register_blueprint(orchestrator.blueprint)
    app.register_blueprint(plans.blueprint)
    app.register_blueprint(flower.blueprint)
    app.register_blueprint(dashboard.blueprint)
    app.register_blueprint(logs.blueprint)
    app.register_blueprint(metrics.blueprint)
    app.register_blueprint(agents.blueprint)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(docs.blueprint)
    register_error_handlers(app)
    limiter = RateLimiter(client, keys, settings.rate_limit_per_minute, settings.rate_limit_burst)
    auth.install(app, settings, tokens, limiter)
    return app
