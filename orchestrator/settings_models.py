"""Settings of models, tools and remote agents: the chat APIs LLM agents and ``step_input.llm``
use, the tool loop, HTTP agents' limits, and the built-in tools'. Part of ``Settings``
(settings.py), whose other fields these follow in ``meowstik config`` and the README's table."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.core.llm_endpoints import DEFAULT_ENDPOINT, LlmEndpoint, load_llm_endpoints
from orchestrator.core.models import BudgetRequest


class ModelToolSettings(BaseSettings):
    """MEOWSTIK_LLM_*, MEOWSTIK_HTTP_AGENT_* and the tools' settings."""

    model_config = SettingsConfigDict(env_prefix="MEOWSTIK_", extra="ignore")

    llm_base_url: str | None = Field(
        default=None,
        description="Base URL of an OpenAI-compatible chat API for LLM agents and the LLM "
        "planner, e.g. http://localhost:11434/v1. Unset: LLM agents stay unhosted (a worker "
        "hosting their id can run them); plans come from templates and rules.",
    )
    llm_model: str = Field(
        default="gpt-4o-mini", description="Model named in every request to the chat API."
    )
    llm_api_key: SecretStr | None = Field(
        default=None, description="Key for the chat API, sent as a Bearer token."
    )
    llm_timeout_s: float = Field(
        default=60.0, gt=0, description="Timeout of one request to the chat API."
    )
    llm_max_turns: int = Field(
        default=10,
        ge=1,
        le=100,
        description="Most model calls in one chat of a tool loop (an LLM agent's step, or one "
        "`step_input.llm.chat`); a model still calling tools after that fails the step.",
    )
    llm_stream: bool = Field(
        default=True,
        description="Stream model replies, sending their text to the session's events as "
        "`step.delta` while it arrives (an agent's `stream` overrides it).",
    )
    prices_file: Path | None = Field(
        default=None,
        description="YAML price table (USD per million input and output tokens, by model) that "
        "model calls are costed with; unset: the shipped examples (orchestrator/prices.yaml), "
        "dated. Models not in it count tokens with cost null.",
    )
    cost_history_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="Days GET /costs can look back: the hourly cost counters by user, agent and "
        "model expire this long after their hour.",
    )
    budget_max_cost_usd: float | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        description="Budget (USD) of a session submitted without `budget`; unset: none. A user's "
        "own default in MEOWSTIK_USER_BUDGETS comes first.",
    )
    budget_max_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Token budget of a session submitted without `budget`; unset: none.",
    )
    user_budgets: dict[str, BudgetRequest] = Field(
        default={},
        description='Budgets by user for sessions submitted without `budget`: a JSON object `{"'
        'alice": {"maxCostUsd": 5, "maxTokens": 200000}}` (a userId not listed gets '
        "MEOWSTIK_BUDGET_MAX_COST_USD / _MAX_TOKENS).",
    )
    budget_decision_timeout_s: float = Field(
        default=86400,
        gt=0,
        description="How long a session paused on its budget waits for a person to raise it; "
        "then it stops, failed with BudgetExceeded.",
    )
    llm_endpoints: SecretStr | None = Field(
        default=None,
        description="Named chat APIs an LLM agent may pick with its `baseUrl`: a JSON object "
        '`{"name": {"baseUrl": "http://...", "apiKey": "...", "model": "..."}}` (apiKey and '
        "model optional). `default` is MEOWSTIK_LLM_BASE_URL's. Secret: it holds keys.",
    )

    http_agent_allowed_schemes: str = Field(
        default="http,https", description="Comma-separated URL schemes HTTP agents may use."
    )
    http_agent_allowed_hosts: str = Field(
        default="127.0.0.1,localhost,::1",
        description="Comma-separated hosts HTTP agents may use; '*' allows any host.",
    )
    http_agent_max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries within one call of an HTTP agent or the chat API (connection "
        "errors, timeouts, 429, 5xx).",
    )

    require_registered_tools: bool = Field(
        default=False,
        description="Refuse (422) API-registered agents naming an unregistered tool; when off "
        "(the spec's example names `custom_tool`) they are listed with `missingTools`.",
    )
    tool_modules: str = Field(
        default="",
        description="Comma-separated modules whose `@tool` functions agents may use (with the "
        "built-in tools and the `meowstik.tools` entry points).",
    )
    workspace_max_file_bytes: int = Field(
        default=256 * 1024,
        ge=1,
        description="Largest file of a session's workspace (workspace_write), in bytes of UTF-8.",
    )
    workspace_max_files: int = Field(
        default=100, ge=1, description="Most files one session's workspace may hold."
    )
    http_tool_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Timeout of the http_get and github_code_search tools' requests (connect, "
        "each read, and the whole body).",
    )
    http_tool_max_chars: int = Field(
        default=20_000,
        ge=1,
        description="Most characters of a response body the http_get tool gives the model (the "
        "rest is cut, and the result says so).",
    )
    github_api_url: str = Field(
        default="https://api.github.com",
        description="GitHub's REST API for the github_code_search tool (GitHub Enterprise: "
        "https://HOST/api/v3); its host must be in MEOWSTIK_HTTP_AGENT_ALLOWED_HOSTS.",
    )
    github_token: SecretStr | None = Field(
        default=None,
        description="Token the github_code_search tool sends to GitHub (code search needs one).",
    )

    def llm_endpoint_table(self) -> dict[str, LlmEndpoint]:
        """The chat APIs by name: ``default`` (MEOWSTIK_LLM_BASE_URL, when set) and those of
        MEOWSTIK_LLM_ENDPOINTS; ConfigurationError naming the entry if one is malformed."""
        default = None
        if self.llm_base_url:
            default = LlmEndpoint(DEFAULT_ENDPOINT, self.llm_base_url, self.llm_api_key)
        raw = self.llm_endpoints.get_secret_value() if self.llm_endpoints else None
        return load_llm_endpoints(raw, default)

    @property
    def tool_module_names(self) -> list[str]:
        return [name.strip() for name in self.tool_modules.split(",") if name.strip()]

    def default_budget(self, user_id: str | None) -> BudgetRequest | None:
        """The budget of a session submitted without one: the user's, else the default's."""
        if user_id is not None and user_id in self.user_budgets:
            return self.user_budgets[user_id]
        if self.budget_max_cost_usd is None and self.budget_max_tokens is None:
            return None
        return BudgetRequest(
            max_cost_usd=self.budget_max_cost_usd, max_tokens=self.budget_max_tokens
        )
