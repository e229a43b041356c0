"""One settings object for every process, read from ``MEOWSTIK_*`` environment variables.

Create it only at process edges (the app factory, the worker start, the CLI) and pass it down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, StringConstraints
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.core.access import TokenTable, load_tokens
from orchestrator.core.models import MAX_STEP_TIMEOUT_S
from orchestrator.settings_models import ModelToolSettings

DEFAULT_EMBEDDED_REDIS_PORT = 6399
DEFAULT_API_PORT = 5000
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_LEASE_S = 15.0
DEFAULT_VISIBILITY_TIMEOUT_S = 3600
DEFAULT_SESSION_RETENTION_S = 7 * 24 * 3600
DEFAULT_SCHEDULE_TIMEOUT_S = 300.0
DEFAULT_STEP_TIMEOUT_GRACE_S = 5.0
DEFAULT_WORKER_STORE_RETRY_S = 300.0
DEFAULT_MIN_REPLICA_ACKS = 0  # a plain Redis has no replica to wait for
DEFAULT_REPLICA_WAIT_MS = 1000
MAX_REPLICA_WAIT_MS = 4000  # below the API's 5 s Redis socket timeout (api/app.py)


class _ServiceSettings(BaseSettings):
    """The cluster's settings: Redis, the API, workers, routing, sessions."""

    model_config = SettingsConfigDict(env_prefix="MEOWSTIK_", extra="ignore")

    redis_url: str | None = Field(
        default=None,
        description="Redis for broker and state. Unset: `meowstik up` starts an embedded Redis.",
    )
    embedded_redis_port: int = Field(
        default=DEFAULT_EMBEDDED_REDIS_PORT,
        ge=1,
        le=65535,
        description="Port of the embedded Redis, used while MEOWSTIK_REDIS_URL is unset.",
    )
    data_dir: Path = Field(
        default=Path(".meowstik"),
        description="Embedded Redis data (AOF), logs and lock file of `meowstik up`.",
    )
    redis_sentinel_master: str = Field(
        default="mymaster",
        description="Master name to ask the sentinels for when MEOWSTIK_REDIS_URL is sentinel://.",
    )
    redis_allow_eviction: bool = Field(
        default=False,
        description="Run on a Redis whose maxmemory-policy may evict keys (anything but "
        "noeviction) with a warning (and /healthz warnings) instead of refusing to start: an "
        "evicting Redis silently drops session keys when memory is full. Not recommended.",
    )
    redis_min_replica_acks: int = Field(
        default=DEFAULT_MIN_REPLICA_ACKS,
        ge=0,
        le=16,
        description="Replicas that must confirm a new session (Redis WAIT) before the API "
        "answers 202, so a failover cannot lose it; 0 waits for none. Set 1 with Sentinel "
        "(docs/deployment.md).",
    )
    redis_replica_wait_ms: int = Field(
        default=DEFAULT_REPLICA_WAIT_MS,
        ge=1,
        le=MAX_REPLICA_WAIT_MS,
        description="How long a submit waits for MEOWSTIK_REDIS_MIN_REPLICA_ACKS replicas; "
        "then 503 `replica_ack_timeout` (the session exists on the master: retry with the same "
        "Idempotency-Key).",
    )
    key_prefix: str = Field(
        default="meowstik",
        pattern=r"^[A-Za-z0-9_.-]{1,32}$",
        description="Prefix of every Redis key, the Celery broker's queues included (1-32 "
        "letters, digits, `_`, `.` or `-`); deployments sharing a Redis database need different "
        "ones.",
    )

    api_url: str = Field(
        default="http://127.0.0.1:5000", description="Where the CLI commands find the API."
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token the CLI commands send to the API (Authorization header).",
    )
    api_tokens: SecretStr | None = Field(
        default=None,
        description="Tokens the API accepts: entries `user_id:role:token` (role `admin` or "
        "`user`) separated by commas or newlines. Set, every request needs one; unset, the API "
        "runs open and answers loopback clients only.",
    )
    api_tokens_file: Path | None = Field(
        default=None,
        description="A file of `user_id:role:token` lines (`#` comments), read with "
        "MEOWSTIK_API_TOKENS; for Docker secrets.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key that signs dashboard login cookies. Unset: derived from the tokens, so "
        "changing the tokens logs everyone out.",
    )
    session_cookie_secure: bool = Field(
        default=False,
        description="Mark the dashboard login cookie Secure (set it when the API is served "
        "over HTTPS).",
    )
    rate_limit_per_minute: int = Field(
        default=1200,
        ge=0,
        description="Requests per minute one token may make, counted in Redis across all API "
        "processes (429 with Retry-After above; 0 turns the limit off). Open mode is not limited.",
    )
    rate_limit_burst: int = Field(
        default=200,
        ge=1,
        description="Requests one token may make at once before MEOWSTIK_RATE_LIMIT_PER_MINUTE "
        "paces it.",
    )
    api_host: str = Field(
        default="127.0.0.1",
        description="Address the API listens on under `meowstik up` and `meowstik-api`. Any "
        "address but loopback needs MEOWSTIK_API_TOKENS.",
    )
    api_port: int = Field(
        default=DEFAULT_API_PORT,
        ge=1,
        le=65535,
        description="Port the API listens on under `meowstik up` and `meowstik-api`.",
    )
    api_processes: int = Field(
        default=2, ge=1, le=64, description="Gunicorn worker processes of the API."
    )
    api_threads: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Threads per API process; bounds concurrent requests, event streams included.",
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        ge=1024,
        description="Largest request body the API accepts (413 above).",
    )
    max_goal_chars: int = Field(
        default=4000, ge=1, description="Longest goal a request may have (422 above)."
    )
    max_plan_steps: int = Field(
        default=1000,
        ge=1,
        description="Most steps in a session, sub-plans added at run time included (a "
        "request above it gets 422).",
    )
    max_plan_depth: int = Field(
        default=5, ge=1, le=20, description="Deepest nesting of subtasks, static or dynamic."
    )
    max_subplan_steps: int = Field(
        default=50, ge=1, le=1000, description="Most steps one sub-plan returned by a step may add."
    )
    max_decompositions: int = Field(
        default=3, ge=1, le=100, description="Most sub-plans one step may return in a session."
    )
    max_subtasks_per_step: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Most subtasks one plan step may list (422 above).",
    )
    max_step_parameters_bytes: int = Field(
        default=64 * 1024,
        ge=2,
        description="Largest `parameters` object of one plan step, in bytes of compact JSON "
        "(422 above).",
    )
    max_context_bytes: int = Field(
        default=256 * 1024,
        ge=2,
        description="Largest shared context, in bytes of compact JSON: a request's "
        "`initialContext`, and a session's context after a PATCH .../context merge (422 above).",
    )
    max_state_value_bytes: int = Field(
        default=256 * 1024,
        ge=2,
        description="Largest session state value, in bytes of compact JSON, from any writer.",
    )
    max_metadata_bytes: int = Field(
        default=16 * 1024,
        ge=2,
        description="Largest `metadata` of a request or of an agent registered over the API, "
        "in bytes of compact JSON (422 above).",
    )
    max_metadata_depth: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Deepest nesting of objects and arrays in `metadata` (422 above).",
    )

    planner: str = Field(
        default="auto",
        pattern=r"^(auto|rule|template|llm)$",
        description="Planner for requests that name none: auto (a matching template, else the "
        "LLM when configured, else rules), rule, template or llm.",
    )
    template_dirs: str = Field(
        default="",
        description="Comma-separated folders of your own workflow templates (`*.yaml`), read "
        "after the built-in ones: a template of the same name replaces a built-in one.",
    )
    planner_max_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="LLM planner replies asked for (the first plus repairs) before the rule "
        "planner takes over.",
    )

    step_max_attempts: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Attempts of a step on one agent for retryable errors; a request's "
        "`maxAttempts` overrides it.",
    )
    retry_backoff_s: float = Field(
        default=0.5,
        ge=0,
        description="Wait before a step's first retry; it doubles on each further one.",
    )
    retry_backoff_max_s: float = Field(
        default=30.0, ge=0, description="Longest wait between retries of a step."
    )
    step_timeout_s: float | None = Field(
        default=None,
        gt=0,
        le=MAX_STEP_TIMEOUT_S,
        description="Time limit of a step run when neither the step nor its agent sets "
        "`timeoutS`; unset: no limit. A run past its limit fails with StepTimeoutError "
        "(retryable): a Python agent gets SoftTimeLimitExceeded, then its process is killed.",
    )
    step_timeout_grace_s: float = Field(
        default=DEFAULT_STEP_TIMEOUT_GRACE_S,
        gt=0,
        le=3600,
        description="How long a timed-out Python agent (prefork pool) has to clean up after "
        "SoftTimeLimitExceeded before Celery's hard limit kills its process.",
    )
    lease_s: float = Field(
        default=DEFAULT_LEASE_S,
        gt=0,
        description="Lease of a running step, renewed every third of it; once it lapses "
        "(the worker died) another delivery takes the step over.",
    )
    visibility_timeout_s: int = Field(
        default=DEFAULT_VISIBILITY_TIMEOUT_S,
        ge=10,
        description="kombu visibility timeout: how long before the broker redelivers an "
        "unacknowledged message.",
    )
    worker_store_retry_s: float = Field(
        default=DEFAULT_WORKER_STORE_RETRY_S,
        ge=0,
        description="How long a worker retries claiming a step or recording its outcome while "
        "Redis does not answer or refuses writes (out of memory, MISCONF), backing off up to "
        "2 s between tries; then the reconciler takes the step over.",
    )
    unacked_restore_interval_s: int = Field(
        default=10, ge=1, description="How often kombu looks for unacked messages to restore."
    )
    unacked_restore_throttle: int = Field(
        default=10, ge=1, description="kombu scans only every Nth look (see docs/architecture.md)."
    )
    publish_max_retries: int = Field(
        default=2,
        ge=0,
        description="Retries of publishing steps to the broker before giving up (the API "
        "answers 503).",
    )
    session_retention_s: int = Field(
        default=DEFAULT_SESSION_RETENTION_S,
        ge=1,
        description="How long a finished session's keys live in Redis.",
    )
    idempotency_ttl_s: int = Field(
        default=86400,
        ge=1,
        le=30 * 86400,
        description="How long an `Idempotency-Key` on POST /orchestrate is remembered: the same "
        "key and body within it return the first session (200, `Idempotent-Replayed: true`).",
    )
    signing_secrets: SecretStr | None = Field(
        default=None,
        description="Comma-separated secrets that sign webhook deliveries and HTTP agent calls "
        '(`X-Meowstik-Signature: t=<unix s>,v1=<HMAC-SHA256 of "<t>.<body>">`, one v1 per '
        "secret: put the new one first while rotating). Unset: requests go unsigned.",
    )

    webhook_retry_s: float = Field(
        default=86400,
        gt=0,
        description="How long a session's webhook (`callbackUrl`) is retried after the session "
        "ended, with backoff from MEOWSTIK_WEBHOOK_BACKOFF_S doubling to 5 minutes; then it is "
        "abandoned (GET .../sessions/<id>/deliveries says so).",
    )
    user_callbacks: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=200)],
        Annotated[str, StringConstraints(min_length=1, max_length=2048)],
    ] = Field(
        default={},
        description="Default webhooks by user for sessions submitted without `callbackUrl`: a "
        'JSON object `{"alice": "https://alice.example/hooks", "*": "https://ops.example/hooks"}` '
        '(each token names a user, so this is per token; "*": every other user, and open mode). '
        "Checked like a callbackUrl at each submit.",
    )
    webhook_backoff_s: float = Field(
        default=1.0, gt=0, le=300, description="The first pause before a webhook is retried."
    )
    webhook_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="Timeout of one webhook delivery attempt."
    )

    def default_callback(self, user_id: str | None) -> str | None:
        """The webhook of a session submitted without one: its user's, else "*"'s, else none."""
        if user_id is not None and user_id in self.user_callbacks:
            return self.user_callbacks[user_id]
        return self.user_callbacks.get("*")

    @property
    def signing_keys(self) -> list[str]:
        """MEOWSTIK_SIGNING_SECRETS as a list (empty: sign nothing)."""
        raw = self.signing_secrets.get_secret_value() if self.signing_secrets else ""
        return [part.strip() for part in raw.split(",") if part.strip()]

    selection_policy: str = Field(
        default="least_loaded",
        pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="How routing ranks eligible agents: least_loaded, priority_first, "
        "round_robin, or a policy from MEOWSTIK_POLICY_MODULES (a session's `policy` overrides "
        "it).",
    )
    learned_window: str = Field(
        default="1h",
        pattern=r"^(1h|24h)$",
        description="The `learned` policy's memory: the agent metrics window it learns from (1h "
        "or 24h); older runs are forgotten, so a recovered agent is noticed.",
    )
    learned_exploration: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Share of the `learned` policy's decisions that rank candidates at random "
        "(a floor of exploration).",
    )
    learned_latency_weight: float = Field(
        default=0.3, ge=0, le=1, description="What slowness takes off a success (0-1), `learned`."
    )
    learned_latency_scale_s: float = Field(
        default=5.0,
        gt=0,
        description="Mean run time at which `learned` takes off half the latency weight.",
    )
    learned_cost_weight: float = Field(
        default=0.1, ge=0, le=1, description="What cost takes off a success (0-1), `learned`."
    )
    learned_cost_scale_usd: float = Field(
        default=0.01,
        gt=0,
        description="Cost per run at which `learned` takes off half the cost weight.",
    )
    policy_modules: str = Field(
        default="",
        description="Comma-separated modules (dotted names or .py file paths) defining selection "
        "policies (module-level SelectionPolicy instances, orchestrator/core/policies.py); the "
        "`meowstik.policies` entry points are loaded too. Set the same on the API and workers.",
    )
    reservation_s: float = Field(
        default=60.0, gt=0, description="How long a routed step holds its agent's slot unclaimed."
    )
    heartbeat_interval_s: float = Field(
        default=5.0, gt=0, description="How often a worker heartbeats for its agents."
    )
    heartbeat_timeout_s: float = Field(
        default=15.0, gt=0, description="An agent whose worker is silent this long is offline."
    )
    input_timeout_s: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="How long a step waits for operator input when its request names no timeout.",
    )
    schedule_timeout_s: float = Field(
        default=DEFAULT_SCHEDULE_TIMEOUT_S,
        gt=0,
        description="How long a step waits when no live agent could run it (none alive, or all "
        "unhosted) before it fails; a step waiting for a busy agent never times out.",
    )
    max_fallbacks: int = Field(
        default=2,
        ge=0,
        le=20,
        description="Most times a failed step moves to another agent with its capabilities.",
    )
    max_deliveries: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Runs of a step whose worker died before it is dead-lettered (failed).",
    )
    circuit_failure_threshold: int = Field(
        default=5,
        ge=1,
        description="Failures of an agent within the circuit window that open its circuit.",
    )
    circuit_window_s: float = Field(
        default=60.0, gt=0, description="Window in which an agent's failures are counted."
    )
    circuit_cooldown_s: float = Field(
        default=30.0,
        gt=0,
        description="How long an open circuit keeps its agent out of routing.",
    )

    log_format: str = Field(
        default="json",
        pattern=r"^(json|text)$",
        description="Process logs as JSON lines with session and step ids (json) or plain "
        "text (text).",
    )
    tracing: bool = Field(
        default=False,
        description="OpenTelemetry traces: one per session, a span per request, step run, "
        "model call and tool call, W3C `traceparent` to workers and HTTP agents. Exported as "
        "the OTEL_* variables say (OTEL_TRACES_EXPORTER, default otlp; "
        "OTEL_EXPORTER_OTLP_ENDPOINT, ...); needs the `tracing` extra.",
    )
    agent_modules: str = Field(
        default="", description="Comma-separated modules whose `Agent` objects workers can host."
    )
    worker_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Processes (or threads) per worker. Unset: the sum of its agents' "
        "maxLoad up to 8, or 16 for the remote-agents worker.",
    )
    worker_pool: str = Field(
        default="prefork",
        pattern=r"^(prefork|threads|solo)$",
        description="Celery pool of agent workers: prefork, threads or solo (the "
        "remote-agents worker always uses threads).",
    )
    worker_remote_control: bool = Field(
        default=True,
        description="Celery remote control (revoke, inspect, Flower's commands); see "
        "docs/architecture.md on Redis restarts.",
    )

    autoscale: bool = Field(
        default=False,
        description="`meowstik up` adds agent replicas (worker processes) while an agent's "
        "backlog stays deep and removes idle ones.",
    )
    autoscale_max_workers: int = Field(
        default=4, ge=1, le=32, description="Most worker processes per agent, the first included."
    )
    autoscale_backlog: int = Field(
        default=10,
        ge=1,
        description="Steps waiting for an agent's capabilities (for capacity or in its queues) "
        "that count as deep.",
    )
    autoscale_up_after_s: float = Field(
        default=5.0,
        ge=0,
        description="How long a backlog must stay deep before a replica is added.",
    )
    autoscale_idle_s: float = Field(
        default=30.0, ge=0, description="How long a replica must be idle before it is removed."
    )
    autoscale_interval_s: float = Field(
        default=2.0, gt=0, description="How often the autoscaler looks at backlogs."
    )

    @property
    def policy_module_names(self) -> list[str]:
        return [name.strip() for name in self.policy_modules.split(",") if name.strip()]

    @property
    def effective_redis_url(self) -> str:
        """The Redis URL every process uses: the configured one, else the embedded server's."""
        return self.redis_url or f"redis://127.0.0.1:{self.embedded_redis_port}/0"

    def token_table(self) -> TokenTable:
        """The API's tokens (MEOWSTIK_API_TOKENS and _FILE); TokenConfigError if malformed."""
        tokens = self.api_tokens.get_secret_value() if self.api_tokens else None
        return load_tokens(tokens, self.api_tokens_file)

    @property
    def template_directories(self) -> list[Path]:
        return [Path(name.strip()) for name in self.template_dirs.split(",") if name.strip()]

    @property
    def agent_module_names(self) -> list[str]:
        return [name.strip() for name in self.agent_modules.split(",") if name.strip()]


class Settings(ModelToolSettings, _ServiceSettings):
    """Effective configuration. Every field maps to ``MEOWSTIK_<FIELD_NAME_UPPERCASE>``: the
    cluster's (above), then the models' and tools' (settings_models.py)."""

    model_config = SettingsConfigDict(env_prefix="MEOWSTIK_", extra="ignore")
