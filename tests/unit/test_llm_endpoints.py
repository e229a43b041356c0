"""Named LLM endpoints and an agent's model overrides: the setting, registration over REST, and
what an LLM agent sends and logs (against the OpenAI wire fake)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api import create_app
from orchestrator.core.errors import ConfigurationError, PermanentStepError
from orchestrator.core.models import AgentDefinition, AgentExecutor, Capability, PlanStep
from orchestrator.core.steps import StepInput
from orchestrator.settings import Settings
from tests.support.llm import bind_model
from tests.support.openai_wire import OpenAIWire, WireReply
from tests.support.recording import RecordingDispatcher
from tests.support.spec import SPEC_CUSTOM_AGENT_BODY
from workers.executors.llm import LlmAgent

DEFAULT_KEY = "sk-default-0123456789"
NAMED_KEY = "sk-named-9876543210"


class RecordingLogger:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, dict[str, Any]]] = []

    def _add(self, level: str, message: str, data: dict[str, Any]) -> None:
        self.entries.append((level, message, data))

    def debug(self, message: str, **data: Any) -> None:
        self._add("debug", message, data)

    def info(self, message: str, **data: Any) -> None:
        self._add("info", message, data)

    def warn(self, message: str, **data: Any) -> None:
        self._add("warn", message, data)

    def error(self, message: str, **data: Any) -> None:
        self._add("error", message, data)


def endpoints(**entries: dict[str, Any]) -> str:
    return json.dumps(entries)


def agent(**overrides: Any) -> AgentDefinition:
    return AgentDefinition(
        id="writer",
        name="Writer",
        type="writer",
        capabilities=[Capability(name="write")],
        executor=AgentExecutor.LLM,
        **overrides,
    )


def step_input(logger: RecordingLogger) -> StepInput:
    step = PlanStep(id="draft", title="Draft", required_capabilities=["write"])
    return StepInput("s-1", "draft", "job-1", "Write a haiku", step, "writer", 1, logger=logger)


def test_the_endpoint_table_has_the_default_and_the_named_endpoints_with_keys_kept_secret():
    settings = Settings(
        llm_base_url="http://127.0.0.1:11434/v1",
        llm_api_key=DEFAULT_KEY,
        llm_endpoints=endpoints(
            openai={"baseUrl": "https://api.openai.com/v1", "apiKey": NAMED_KEY, "model": "gpt-4o"}
        ),
    )
    table = settings.llm_endpoint_table()
    assert sorted(table) == ["default", "openai"]
    assert table["openai"].api_key_value == NAMED_KEY and table["openai"].model == "gpt-4o"
    assert table["default"].api_key_value == DEFAULT_KEY
    assert NAMED_KEY not in repr(table) and NAMED_KEY not in repr(settings)


@pytest.mark.parametrize(
    "raw, says",
    [
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        (endpoints(default={"baseUrl": "http://x/v1"}), "MEOWSTIK_LLM_BASE_URL's"),
        (endpoints(a={"baseUrl": "ftp://x"}), r"baseUrl must be an http\(s\) URL"),
        (endpoints(a={"baseUrl": "http://x/v1", "apikey": NAMED_KEY}), "unknown field"),
        (json.dumps({"bad name": {"baseUrl": "http://x/v1"}}), "malformed"),
    ],
)
def test_a_malformed_endpoint_setting_names_the_problem_and_never_the_key(raw, says):
    with pytest.raises(ConfigurationError, match=says) as raised:
        Settings(llm_endpoints=raw).llm_endpoint_table()
    assert NAMED_KEY not in str(raised.value)


def registering_client(fake_redis, **settings: Any):
    app = create_app(
        Settings(**settings), redis_client=fake_redis, dispatcher=RecordingDispatcher()
    )
    return app.test_client()


def test_registration_accepts_overrides_naming_a_configured_endpoint(fake_redis):
    client = registering_client(
        fake_redis,
        llm_base_url="http://127.0.0.1:9/v1",
        llm_endpoints=endpoints(local={"baseUrl": "http://127.0.0.1:11434/v1"}),
    )
    overrides = {"model": "llama3.1", "baseUrl": "local", "temperature": 0.0, "maxTokens": 800}
    response = client.post("/api/orchestrator/agents", json={**SPEC_CUSTOM_AGENT_BODY, **overrides})
    assert response.status_code == 201, response.get_data(as_text=True)
    listed = client.get("/api/orchestrator/agents/custom-agent-001").get_json()
    assert {name: listed[name] for name in overrides} == overrides


def test_registration_refuses_a_base_url_naming_no_configured_endpoint(fake_redis):
    client = registering_client(
        fake_redis,
        llm_base_url="http://127.0.0.1:9/v1",
        llm_endpoints=endpoints(local={"baseUrl": "http://127.0.0.1:11434/v1"}),
    )
    body = {**SPEC_CUSTOM_AGENT_BODY, "baseUrl": "openai"}
    response = client.post("/api/orchestrator/agents", json=body)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["details"]["field"] == "baseUrl"
    assert error["details"]["configured"] == ["default", "local"]
    assert "'openai'" in error["message"] and "local" in error["message"]


@pytest.mark.parametrize(
    "change",
    [{"temperature": 2.5}, {"maxTokens": 0}, {"model": "has space"}, {"baseUrl": "http://x/v1"}],
)
def test_registration_refuses_out_of_range_overrides(fake_redis, change):
    client = registering_client(fake_redis)
    response = client.post("/api/orchestrator/agents", json={**SPEC_CUSTOM_AGENT_BODY, **change})
    assert response.status_code == 422, response.get_data(as_text=True)


def test_registration_refuses_model_overrides_on_an_http_agent(fake_redis):
    client = registering_client(fake_redis)
    body = {**SPEC_CUSTOM_AGENT_BODY, "endpoint": "http://127.0.0.1:8080/x", "model": "gpt-4o"}
    response = client.post("/api/orchestrator/agents", json=body)
    assert response.status_code == 422
    assert response.get_json()["error"]["details"]["field"] == "model"


def test_an_llm_agent_uses_its_named_endpoint_key_model_and_sampling_and_logs_usage():
    with OpenAIWire(WireReply(content='{"output": "An old silent pond"}')) as named:
        settings = Settings(
            llm_base_url="http://127.0.0.1:9/v1",
            llm_api_key=DEFAULT_KEY,
            llm_endpoints=endpoints(local={"baseUrl": named.url, "apiKey": NAMED_KEY}),
        )
        definition = agent(
            base_url="local", model="llama3.1", temperature=0.0, max_tokens=64, system_prompt="Hi"
        )
        logger = RecordingLogger()
        given = bind_model(definition, settings, step_input(logger), sleep=[].append)
        result = LlmAgent(definition, settings).run(given)
    assert result.output == "An old silent pond"
    [request] = named.requests
    assert request.headers["authorization"] == f"Bearer {NAMED_KEY}"
    body = request.body
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("llama3.1", 0.0, 64)
    assert body["messages"][0] == {"role": "system", "content": "Hi"}
    [(level, message, data)] = [e for e in logger.entries if e[1] == "model call"]
    assert level == "info"
    # llama3.1 is not in the price table: its tokens count, its cost is not made up
    [(level, warning, price)] = [e for e in logger.entries if e[1] != "model call"]
    assert level == "warn" and warning.startswith("no price for this model")
    assert price["model"] == "llama3.1"
    assert data["usage"] == {"promptTokens": 31, "completionTokens": 12, "totalTokens": 43}
    assert data["endpoint"] == "local" and data["model"] == "llama3.1"
    assert NAMED_KEY not in repr(logger.entries) and DEFAULT_KEY not in repr(logger.entries)


def test_an_llm_agent_without_overrides_uses_the_default_endpoint_and_logs_unknown_usage():
    with OpenAIWire(WireReply(content="plain words", usage=None)) as default:
        settings = Settings(llm_base_url=default.url, llm_model="test-model", llm_api_key=None)
        logger = RecordingLogger()
        result = LlmAgent(agent(), settings).run(bind_model(agent(), settings, step_input(logger)))
    assert result.output == {"text": "plain words", "mode": "llm", "model": "test-model"}
    body = default.requests[0].body
    assert (body["model"], body["temperature"]) == ("test-model", 0.2)
    assert "max_tokens" not in body
    assert logger.entries[0][2]["usage"] == "unknown"


def test_an_agent_naming_an_endpoint_this_worker_lacks_fails_permanently_saying_so():
    settings = Settings(llm_base_url="http://127.0.0.1:9/v1")
    with pytest.raises(PermanentStepError, match="'elsewhere'.*configured: \\['default'\\]"):
        LlmAgent(agent(base_url="elsewhere"), settings)
