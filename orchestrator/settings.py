"""One settings object for every process, read from ``MEOWSTIK_*`` environment variables.

Create it only at process edges (the app factory, the worker start, the CLI) and pass it down.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBEDDED_REDIS_PORT = 6399
DEFAULT_API_PORT = 5000
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_LEASE_S = 15.0
DEFAULT_VISIBILITY_TIMEOUT_S = 3600
DEFAULT_SESSION_RETENTION_S = 7 * 24 * 3600


class Settings(BaseSettings):
    """Effective configuration. Every field maps to ``MEOWSTIK_<FIELD_NAME_UPPERCASE>``."""

    model_config = SettingsConfigDict(env_prefix="MEOWSTIK_", extra="ignore")

    redis_url: str | None = Field(
        default=None,
        description="Redis for broker and state. Unset: `meowstik up` starts an embedded Redis.",
    )
    embedded_redis_port: int = Field(default=DEFAULT_EMBEDDED_REDIS_PORT, ge=1, le=65535)
    data_dir: Path = Field(default=Path(".meowstik"), description="Embedded Redis data and AOF.")
    key_prefix: str = Field(default="meowstik", pattern=r"^[A-Za-z0-9_.-]{1,32}$")

    api_url: str = Field(
        default="http://127.0.0.1:5000", description="Where the CLI commands find the API."
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=DEFAULT_API_PORT, ge=1, le=65535)
    api_processes: int = Field(default=2, ge=1, le=64)
    api_threads: int = Field(default=8, ge=1, le=256)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    max_goal_chars: int = Field(default=4000, ge=1)
    max_plan_steps: int = Field(default=1000, ge=1)
    max_plan_depth: int = Field(
        default=5, ge=1, le=20, description="Deepest nesting of subtasks, static or dynamic."
    )
    max_subplan_steps: int = Field(
        default=50, ge=1, le=1000, description="Most steps one sub-plan returned by a step may add."
    )
    max_decompositions: int = Field(
        default=3, ge=1, le=100, description="Most sub-plans one step may return in a session."
    )

    planner: str = Field(
        default="auto",
        pattern=r"^(auto|rule|template|llm)$",
        description="Planner for requests that name none: auto (a matching template, else the "
        "LLM when configured, else rules), rule, template or llm.",
    )
    template_dirs: str = Field(
        default="", description="Folders of your own workflow templates (*.yaml), comma-separated."
    )
    planner_max_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="LLM planner replies asked for (the first plus repairs) before the rule "
        "planner takes over.",
    )

    step_max_attempts: int = Field(default=3, ge=1, le=100)
    retry_backoff_s: float = Field(default=0.5, ge=0)
    retry_backoff_max_s: float = Field(default=30.0, ge=0)
    lease_s: float = Field(default=DEFAULT_LEASE_S, gt=0)
    visibility_timeout_s: int = Field(default=DEFAULT_VISIBILITY_TIMEOUT_S, ge=10)
    unacked_restore_interval_s: int = Field(
        default=10, ge=1, description="How often kombu looks for unacked messages to restore."
    )
    unacked_restore_throttle: int = Field(
        default=10, ge=1, description="kombu scans only every Nth look (see docs/architecture.md)."
    )
    publish_max_retries: int = Field(default=2, ge=0)
    session_retention_s: int = Field(default=DEFAULT_SESSION_RETENTION_S, ge=60)

    selection_policy: str = Field(
        default="least_loaded", pattern=r"^(least_loaded|priority_first|round_robin)$"
    )
    reservation_s: float = Field(
        default=60.0, gt=0, description="How long a routed step holds its agent's slot unclaimed."
    )
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    heartbeat_timeout_s: float = Field(
        default=15.0, gt=0, description="An agent whose worker is silent this long is offline."
    )
    input_timeout_s: float = Field(
        default=24 * 3600.0, gt=0, description="How long a step waits for operator input."
    )
    max_fallbacks: int = Field(default=2, ge=0, le=20)
    max_deliveries: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Runs of a step whose worker died before it is dead-lettered (failed).",
    )
    circuit_failure_threshold: int = Field(default=5, ge=1)
    circuit_window_s: float = Field(default=60.0, gt=0)
    circuit_cooldown_s: float = Field(default=30.0, gt=0)

    log_format: str = Field(default="json", pattern=r"^(json|text)$")
    agent_modules: str = Field(default="", description="Comma-separated modules defining agents.")
    worker_concurrency: int | None = Field(default=None, ge=1, le=64)
    worker_pool: str = Field(default="prefork", pattern=r"^(prefork|threads|solo)$")
    worker_remote_control: bool = Field(
        default=True, description="Celery remote control (revoke, inspect, Flower's commands)."
    )

    llm_base_url: str | None = Field(
        default=None, description="OpenAI-compatible API base URL, e.g. http://localhost:11434/v1"
    )
    llm_model: str = "gpt-4o-mini"
    llm_api_key: SecretStr | None = None
    llm_timeout_s: float = Field(default=60.0, gt=0)

    http_agent_allowed_schemes: str = Field(default="http,https")
    http_agent_allowed_hosts: str = Field(
        default="127.0.0.1,localhost,::1",
        description="Comma-separated hosts HTTP agents may use; '*' allows any host.",
    )
    http_agent_max_retries: int = Field(default=2, ge=0, le=10)

    @property
    def effective_redis_url(self) -> str:
        """The Redis URL every process uses: the configured one, else the embedded server's."""
        if self.redis_url:
            return self.redis_url
        return f"redis://127.0.0.1:{self.embedded_redis_port}/0"

    @property
    def template_directories(self) -> list[Path]:
        return [Path(name.strip()) for name in self.template_dirs.split(",") if name.strip()]

    @property
    def agent_module_names(self) -> list[str]:
        return [name.strip() for name in self.agent_modules.split(",") if name.strip()]
