"""The chat-model endpoints an LLM agent may name: ``default`` (MEOWSTIK_LLM_BASE_URL, _API_KEY)
and the named ones of MEOWSTIK_LLM_ENDPOINTS.

MEOWSTIK_LLM_ENDPOINTS is a JSON object by name, e.g.
``{"openai": {"baseUrl": "https://api.openai.com/v1", "apiKey": "sk-...", "model": "gpt-4o-mini"},
"local": {"baseUrl": "http://127.0.0.1:11434/v1"}}``; ``apiKey`` and ``model`` (the model an
agent naming this endpoint gets unless it names its own) are optional. The setting is a secret
as a whole, so its keys are never printed; errors name entries and fields, never values.

Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from orchestrator.core.errors import ConfigurationError

DEFAULT_ENDPOINT = "default"
ENDPOINT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SETTING = "MEOWSTIK_LLM_ENDPOINTS"
_NAME = re.compile(ENDPOINT_NAME_PATTERN)
_FIELDS = frozenset({"baseUrl", "apiKey", "model"})
_MAX_URL_CHARS = 2048
_MAX_MODEL_CHARS = 200


@dataclass(frozen=True)
class LlmEndpoint:
    """One OpenAI-compatible chat API. ``api_key`` stays a SecretStr until the client sends it."""

    name: str
    base_url: str
    api_key: SecretStr | None = None
    model: str | None = None

    @property
    def api_key_value(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key else None


def load_llm_endpoints(raw: str | None, default: LlmEndpoint | None) -> dict[str, LlmEndpoint]:
    """The endpoints by name: ``default`` first (when configured), then MEOWSTIK_LLM_ENDPOINTS.

    Raises:
        ConfigurationError: the setting is not a JSON object of well-formed entries, or it
            redefines ``default``; the message names the entry and field, never a value.
    """
    endpoints = {DEFAULT_ENDPOINT: default} if default else {}
    if not raw or not raw.strip():
        return endpoints
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise ConfigurationError(
            f"{SETTING} is not valid JSON (line {getattr(exc, 'lineno', '?')}); write an "
            'object by name: {"local": {"baseUrl": "http://127.0.0.1:11434/v1"}}'
        ) from None
    if not isinstance(document, dict):
        raise ConfigurationError(f"{SETTING} must be a JSON object of endpoints by name")
    for name, entry in document.items():
        endpoints[name] = _entry(name, entry)
    return endpoints


def _entry(name: str, entry: Any) -> LlmEndpoint:
    if not _NAME.fullmatch(name):
        raise ConfigurationError(
            f"{SETTING}: endpoint name {name[:80]!r} is malformed: use 1-64 letters, digits, "
            "'_', '.' or '-', starting with a letter or digit"
        )
    if name == DEFAULT_ENDPOINT:
        raise ConfigurationError(
            f"{SETTING}: the name 'default' is MEOWSTIK_LLM_BASE_URL's; choose another name"
        )
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{SETTING}[{name!r}] must be an object with a baseUrl")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise ConfigurationError(
            f"{SETTING}[{name!r}] has unknown field(s) {unknown}; allowed: {sorted(_FIELDS)}"
        )
    base_url = entry.get("baseUrl")
    if not isinstance(base_url, str) or not re.match(r"^https?://", base_url):
        raise ConfigurationError(
            f"{SETTING}[{name!r}].baseUrl must be an http(s) URL, e.g. http://127.0.0.1:11434/v1"
        )
    api_key, model = entry.get("apiKey"), entry.get("model")
    if api_key is not None and not isinstance(api_key, str):
        raise ConfigurationError(f"{SETTING}[{name!r}].apiKey must be a string")
    if model is not None and not (isinstance(model, str) and 0 < len(model) <= _MAX_MODEL_CHARS):
        raise ConfigurationError(
            f"{SETTING}[{name!r}].model must be a model name of 1-{_MAX_MODEL_CHARS} characters"
        )
    if len(base_url) > _MAX_URL_CHARS:
        raise ConfigurationError(f"{SETTING}[{name!r}].baseUrl is over {_MAX_URL_CHARS} chars")
    return LlmEndpoint(name, base_url, SecretStr(api_key) if api_key else None, model)
