"""The tool catalogue (workers/tools/catalog.py): built-ins, modules on MEOWSTIK_TOOL_MODULES,
duplicates refused; the HTTP tools (workers/tools/web.py) against a real loopback server under
the HTTP agents' allowlist and SSRF rules; and the registration check over REST: a capability
naming an unregistered tool is a 422, the spec's bodies with registered tools a 201."""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest

from api import create_app
from orchestrator.core.errors import ToolCatalogError
from orchestrator.core.models import PlanStep
from orchestrator.core.steps import StepInput
from orchestrator.core.tools import ToolContext, ToolRegistry
from orchestrator.settings import Settings
from tests.support.http_servers import scripted_api
from tests.support.recording import RecordingDispatcher
from tests.support.spec import (
    SPEC_CUSTOM_AGENT_REST_EXAMPLE,
    SPEC_SECURITY_SCANNER_BODY,
)
from workers.tools.catalog import load_tools
from workers.tools.web import MAX_BODY_BYTES

BUILTIN_NAMES = (
    "ask_operator",
    "file_get",
    "github_code_search",
    "http_get",
    "state_delete",
    "state_get",
    "state_set",
    "workspace_list",
    "workspace_read",
    "workspace_write",
)
CONTEXT = ToolContext(
    StepInput(
        session_id="sid",
        step_id="s",
        job_id="sid.s",
        goal="g",
        step=PlanStep(id="s", title="s", required_capabilities=["x"]),
        agent_id="a-1",
        attempt=1,
    )
)


# --- loading ------------------------------------------------------------------------------------


def test_the_built_in_catalogue():
    assert load_tools(Settings()).names() == BUILTIN_NAMES


@pytest.fixture
def tool_module(tmp_path, monkeypatch) -> Iterator[Callable[[str], str]]:
    """Write a module into a temporary directory on sys.path; returns its unique name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(source: str) -> str:
        name = f"tools_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        return name

    yield write


def test_tools_in_a_module_on_meowstik_tool_modules_are_loaded_and_callable(tool_module):
    name = tool_module(
        """
        from orchestrator.core.tools import ToolContext, tool

        @tool(idempotent=True)
        def word_count(context: ToolContext, text: str) -> int:
            '''Count the words of a text.'''
            return len(text.split())

        @tool
        def shout(context: ToolContext, text: str) -> str:
            '''Upper-case a text.'''
            return text.upper()

        GROUP = [shout, "not a tool"]
        """
    )

    registry = load_tools(Settings(tool_modules=f" {name} ,"))

    assert set(registry.names()) == {*BUILTIN_NAMES, "word_count", "shout"}
    assert registry.get("word_count").idempotent is True
    assert registry.invoke("word_count", '{"text": "a b c"}', CONTEXT).value == 3


def test_a_tool_name_defined_twice_is_refused_naming_both_origins(tool_module):
    first = tool_module(
        """
        from orchestrator.core.tools import ToolContext, tool

        @tool(name="http_get")
        def mine(context: ToolContext, url: str) -> str:
            '''Mine.'''
            return url
        """
    )
    with pytest.raises(
        ToolCatalogError,
        match=f"from module {first} is already taken by the tool from the built-in tools",
    ):
        load_tools(Settings(tool_modules=first))


def test_importing_a_built_in_into_a_module_is_not_a_duplicate(tool_module):
    name = tool_module("from orchestrator.core.builtin_tools import state_get, file_get\n")
    assert load_tools(Settings(tool_modules=name)).names() == BUILTIN_NAMES


def test_an_unimportable_tool_module_is_a_clear_error():
    with pytest.raises(ToolCatalogError, match="no_such_tools.*MEOWSTIK_TOOL_MODULES"):
        load_tools(Settings(tool_modules="no_such_tools"))


# --- http_get -----------------------------------------------------------------------------------


class WebHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        api = self.server.api  # type: ignore[attr-defined]
        api.requests.append((self.path, dict(self.headers)))
        path = urlsplit(self.path).path
        if path == "/redirect":
            self._send(302, "text/plain", b"", {"Location": "http://169.254.169.254/"})
        elif path == "/big":
            self._send(200, "text/plain; charset=utf-8", b"y" * (MAX_BODY_BYTES + 10))
        elif path == "/image":
            self._send(200, "image/png", b"\x89PNG....")
        elif path == "/search/code":
            self._send(*api.github)
        else:
            self._send(200, "text/html; charset=utf-8", "<p>héllo</p>".encode())

    def _send(self, status, content_type, body, headers=None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def web() -> Iterator[SimpleNamespace]:
    with scripted_api(WebHandler, SimpleNamespace(requests=[], github=None)) as api:
        yield api


def tools(**settings) -> ToolRegistry:
    return load_tools(Settings(**settings))


def test_http_get_fetches_an_allowed_loopback_page(web):
    result = tools().invoke("http_get", {"url": f"{web.url}/page?key=secret"}, CONTEXT)

    assert result.value == {
        "url": f"{web.url}/page",  # shown without the query string
        "status": 200,
        "contentType": "text/html; charset=utf-8",
        "text": "<p>héllo</p>",
        "truncated": False,
    }


def test_http_get_cuts_the_text_to_the_limit_and_stops_reading_at_the_byte_limit(web):
    small = tools(http_tool_max_chars=5).invoke("http_get", {"url": f"{web.url}/page"}, CONTEXT)
    assert (small.value["text"], small.value["truncated"]) == ("<p>hé", True)

    big = tools(http_tool_max_chars=MAX_BODY_BYTES * 2).invoke(
        "http_get", {"url": f"{web.url}/big"}, CONTEXT
    )
    assert len(big.value["text"]) == MAX_BODY_BYTES and big.value["truncated"] is True


def test_http_get_reports_a_redirect_without_following_it_and_hides_binary_bodies(web):
    moved = tools().invoke("http_get", {"url": f"{web.url}/redirect"}, CONTEXT).value
    assert (moved["status"], moved["location"]) == (302, "http://169.254.169.254/")
    assert [path for path, _ in web.requests] == ["/redirect"]

    image = tools().invoke("http_get", {"url": f"{web.url}/image"}, CONTEXT).value
    assert image["text"] == "" and image["note"] == "8 bytes of non-text content, not shown"


@pytest.mark.parametrize(
    "url, hosts, why",
    [
        ("http://169.254.169.254/latest/meta-data/", "*", "always blocked"),
        ("http://[::ffff:169.254.169.254]/", "*", "always blocked"),
        ("http://2852039166/", "*", "always blocked"),  # 169.254.169.254 as one number
        ("http://example.com/", "127.0.0.1,localhost", "not in the allowed hosts"),
        ("file:///etc/passwd", "*", "scheme 'file'"),
        ("http://user:pw@127.0.0.1/", "*", "credentials"),
    ],
)
def test_http_get_refuses_blocked_and_unlisted_addresses_with_a_tool_error(url, hosts, why):
    result = tools(http_agent_allowed_hosts=hosts).invoke("http_get", {"url": url}, CONTEXT)

    assert result.error is not None and result.error["type"] == "tool_error"
    assert why in result.error["message"] and "http_get may not fetch" in result.error["message"]


def test_http_get_to_a_port_nobody_listens_on_is_a_tool_error():
    result = tools().invoke("http_get", {"url": "http://127.0.0.1:9/"}, CONTEXT)
    assert (
        result.error is not None
        and "http_get: http://127.0.0.1:9/ failed" in result.error["message"]
    )


# --- github_code_search -------------------------------------------------------------------------


def test_github_code_search_without_a_token_says_which_setting_it_needs():
    result = tools().invoke("github_code_search", {"query": "lock"}, CONTEXT)
    assert result.error == {
        "type": "tool_error",
        "message": "github_code_search needs a GitHub token: GitHub's code search API refuses "
        "anonymous calls. Set MEOWSTIK_GITHUB_TOKEN.",
        "details": {"setting": "MEOWSTIK_GITHUB_TOKEN"},
    }


def test_github_code_search_on_a_host_outside_the_allowlist_is_refused_before_sending():
    result = tools(github_token="ghp_secret").invoke("github_code_search", {"query": "x"}, CONTEXT)
    assert result.error is not None
    assert "host 'api.github.com' is not in the allowed hosts" in result.error["message"]
    assert "ghp_secret" not in json.dumps(result.error)


def test_github_code_search_calls_the_search_api_and_shapes_its_answer(web):
    item = {
        "name": "lock.py",
        "path": "redis/lock.py",
        "sha": "abc",
        "html_url": "https://github.com/redis/redis-py/blob/master/redis/lock.py",
        "repository": {"full_name": "redis/redis-py"},
    }
    answer = {"total_count": 1, "incomplete_results": False, "items": [item]}
    web.github = (200, "application/json", json.dumps(answer).encode())
    registry = tools(github_token="ghp_secret", github_api_url=web.url)

    result = registry.invoke(
        "github_code_search", {"query": "Lock repo:redis/redis-py", "per_page": 5}, CONTEXT
    )

    assert result.value == {
        "totalCount": 1,
        "incompleteResults": False,
        "items": [
            {
                "name": "lock.py",
                "path": "redis/lock.py",
                "repository": "redis/redis-py",
                "url": item["html_url"],
                "sha": "abc",
            }
        ],
    }
    ((path, headers),) = web.requests
    assert parse_qs(urlsplit(path).query) == {"q": ["Lock repo:redis/redis-py"], "per_page": ["5"]}
    assert headers["Authorization"] == "Bearer ghp_secret"
    assert headers["Accept"] == "application/vnd.github+json"


def test_github_code_search_passes_githubs_error_message_on(web):
    web.github = (401, "application/json", b'{"message": "Bad credentials"}')
    registry = tools(github_token="ghp_wrong", github_api_url=web.url)

    result = registry.invoke("github_code_search", {"query": "x"}, CONTEXT)

    assert result.error is not None
    assert result.error["message"] == "GitHub answered HTTP 401: Bad credentials"


# --- the registration check over REST -----------------------------------------------------------


@pytest.fixture
def api(fake_redis):
    app = create_app(Settings(), redis_client=fake_redis, dispatcher=RecordingDispatcher())
    return app.test_client()


def test_the_spec_rest_example_registers_and_lists_its_unregistered_tool_as_missing(api):
    response = api.post("/api/orchestrator/agents", json=SPEC_CUSTOM_AGENT_REST_EXAMPLE)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["missingTools"] == ["custom_tool"]
    listed = api.get("/api/orchestrator/agents/custom-agent-001").get_json()
    assert listed["missingTools"] == ["custom_tool"]


@pytest.fixture
def strict_api(fake_redis):
    settings = Settings(require_registered_tools=True)
    app = create_app(settings, redis_client=fake_redis, dispatcher=RecordingDispatcher())
    return app.test_client()


def test_with_require_registered_tools_an_unregistered_tool_is_a_422_naming_it(strict_api):
    api = strict_api
    response = api.post("/api/orchestrator/agents", json=SPEC_CUSTOM_AGENT_REST_EXAMPLE)

    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "unknown_tool"
    assert error["details"] == {
        "field": "capabilities",
        "capability": "custom_capability",
        "tool": "custom_tool",
        "registeredTools": list(BUILTIN_NAMES),
    }
    assert api.get("/api/orchestrator/agents/custom-agent-001").status_code == 404


def test_the_spec_body_naming_file_get_and_github_code_search_registers_strictly(strict_api):
    response = strict_api.post("/api/orchestrator/agents", json=SPEC_SECURITY_SCANNER_BODY)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["capabilities"][0]["tools"] == ["file_get", "github_code_search"]
    assert "missingTools" not in response.get_json() or not response.get_json()["missingTools"]


def test_a_tool_from_a_tool_module_may_be_named_at_registration(fake_redis, tool_module):
    name = tool_module(
        """
        from orchestrator.core.tools import ToolContext, tool

        @tool
        def custom_tool(context: ToolContext) -> str:
            '''Does something special.'''
            return "done"
        """
    )
    settings = Settings(tool_modules=name, require_registered_tools=True)
    client = create_app(
        settings, redis_client=fake_redis, dispatcher=RecordingDispatcher()
    ).test_client()

    response = client.post("/api/orchestrator/agents", json=SPEC_CUSTOM_AGENT_REST_EXAMPLE)
    assert response.status_code == 201, response.get_data(as_text=True)
