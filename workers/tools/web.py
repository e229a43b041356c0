"""The built-in HTTP tools: ``http_get`` (any allowed URL) and ``github_code_search`` (GitHub's
code search REST API). Both go through ``guarded_get``, which keeps the HTTP agents' rules: the
URL passes ``check_agent_endpoint`` (MEOWSTIK_HTTP_AGENT_ALLOWED_SCHEMES and _HOSTS, never an
always-blocked range such as the cloud metadata address), the connection checks the address it
actually reached (address_guard.py), redirects are not followed, and the request is bounded by
MEOWSTIK_HTTP_TOOL_TIMEOUT_S and MAX_BODY_BYTES. Every refusal or failure is a ToolError: the
model reads it as the tool's result.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

import requests
from pydantic import Field

from orchestrator.core.errors import EndpointNotAllowedError, ToolError
from orchestrator.core.registration import check_agent_endpoint
from orchestrator.core.tools import Tool, ToolContext, tool
from orchestrator.settings import Settings
from workers.executors.address_guard import BlockedAddressError, GuardedAdapter
from workers.executors.transport import USER_AGENT, describe_url

MAX_BODY_BYTES = 1024 * 1024
_CHUNK_BYTES = 64 * 1024
_TEXT_TYPES = ("text/", "json", "xml", "javascript", "yaml", "csv")
GITHUB_API_VERSION = "2022-11-28"


@dataclass(frozen=True)
class WebReply:
    """An answer of any status: its body read up to MAX_BODY_BYTES (``complete`` when whole)."""

    status: int
    content_type: str
    body: bytes
    complete: bool
    location: str | None
    encoding: str | None

    @property
    def is_text(self) -> bool:
        return any(marker in self.content_type.lower() for marker in _TEXT_TYPES)

    def text(self) -> str:
        return self.body.decode(self.encoding or "utf-8", errors="replace")


def guarded_get(
    url: str, settings: Settings, *, headers: dict[str, str] | None = None, tool_name: str
) -> WebReply:
    """GET ``url`` under the HTTP agents' rules (module docstring). Raises ToolError."""
    try:
        checked = check_agent_endpoint(url, settings)
    except EndpointNotAllowedError as exc:
        raise ToolError(
            f"{tool_name} may not fetch {exc.endpoint!r}: {exc.reason}. Only the schemes in "
            "MEOWSTIK_HTTP_AGENT_ALLOWED_SCHEMES and hosts in MEOWSTIK_HTTP_AGENT_ALLOWED_HOSTS "
            "are allowed",
            details=exc.details,
        ) from exc
    shown, timeout_s = describe_url(checked), settings.http_tool_timeout_s
    deadline = time.monotonic() + timeout_s
    session = requests.Session()
    session.mount("http://", GuardedAdapter())
    session.mount("https://", GuardedAdapter())
    try:
        with (
            session,
            session.get(
                checked,
                headers={"User-Agent": USER_AGENT, **(headers or {})},
                timeout=timeout_s,
                stream=True,
                allow_redirects=False,
            ) as response,
        ):
            body, complete = _read(response, deadline, shown, timeout_s)
            return WebReply(
                response.status_code,
                response.headers.get("Content-Type", ""),
                body,
                complete,
                response.headers.get("Location"),
                response.encoding,
            )
    except BlockedAddressError as exc:
        raise ToolError(
            f"{tool_name} may not fetch {shown}: {exc}, which is always blocked; nothing was sent",
            details={"url": shown, "address": exc.address, "blockedRange": exc.network},
        ) from exc
    except requests.Timeout as exc:
        raise ToolError(f"{tool_name}: {shown} did not answer within {timeout_s} s") from exc
    except requests.RequestException as exc:
        raise ToolError(f"{tool_name}: {shown} failed: {type(exc).__name__}: {exc}") from exc


def _read(
    response: requests.Response, deadline: float, shown: str, timeout_s: float
) -> tuple[bytes, bool]:
    chunks, size = [], 0
    for chunk in response.iter_content(_CHUNK_BYTES):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"".join(chunks)[:MAX_BODY_BYTES], False
        if time.monotonic() > deadline:
            raise ToolError(f"{shown} took longer than {timeout_s} s to send its body")
    return b"".join(chunks), True


def web_tools(settings: Settings) -> tuple[Tool, ...]:
    """``http_get`` and ``github_code_search``, bound to ``settings``."""

    @tool(name="http_get", idempotent=True)
    def http_get(context: ToolContext, url: str) -> dict[str, Any]:
        """Fetch a web page or API answer with HTTP GET (only allowed hosts; redirects are not
        followed but reported). Returns the status, content type and text, cut to a limit.

        Args:
            url: an absolute http(s) URL.
        """
        reply = guarded_get(url, settings, tool_name="http_get")
        limit = settings.http_tool_max_chars
        text = reply.text() if reply.is_text else ""
        result: dict[str, Any] = {
            "url": describe_url(url),
            "status": reply.status,
            "contentType": reply.content_type,
            "text": text[:limit],
            "truncated": not reply.complete or len(text) > limit,
        }
        if not reply.is_text:
            result["note"] = f"{len(reply.body)} bytes of non-text content, not shown"
        if reply.location is not None:
            result["location"] = reply.location
        return result

    @tool(name="github_code_search", idempotent=True)
    def github_code_search(
        context: ToolContext, query: str, per_page: Annotated[int, Field(ge=1, le=100)] = 10
    ) -> dict[str, Any]:
        """Search code on GitHub (GitHub's code search syntax, e.g. "lock repo:redis/redis-py
        language:python"). Returns the matching files with their repositories and URLs.

        Args:
            query: the search query, with qualifiers such as repo:, language:, path:.
            per_page: how many results to return (1-100).
        """
        if settings.github_token is None:
            raise ToolError(
                "github_code_search needs a GitHub token: GitHub's code search API refuses "
                "anonymous calls. Set MEOWSTIK_GITHUB_TOKEN.",
                details={"setting": "MEOWSTIK_GITHUB_TOKEN"},
            )
        base = settings.github_api_url.rstrip("/")
        url = f"{base}/search/code?{urlencode({'q': query, 'per_page': per_page})}"
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {settings.github_token.get_secret_value()}",
            "X-GitHub-Api-Version": GITHUB_API_VERSION,
        }
        reply = guarded_get(url, settings, headers=headers, tool_name="github_code_search")
        return _search_results(reply)

    return (http_get, github_code_search)


def _search_results(reply: WebReply) -> dict[str, Any]:
    """GitHub's answer as the tool's result; ToolError for an error status or a bad body."""
    try:
        data = json.loads(reply.body) if reply.complete else None
    except ValueError:
        data = None
    if reply.status != 200:
        message = data.get("message") if isinstance(data, dict) else reply.text()[:300]
        raise ToolError(
            f"GitHub answered HTTP {reply.status}: {message}",
            details={"status": reply.status},
        )
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ToolError("GitHub's answer is not a code search result")
    return {
        "totalCount": data.get("total_count"),
        "incompleteResults": data.get("incomplete_results"),
        "items": [
            {
                "name": item.get("name"),
                "path": item.get("path"),
                "repository": (item.get("repository") or {}).get("full_name"),
                "url": item.get("html_url"),
                "sha": item.get("sha"),
            }
            for item in data["items"]
            if isinstance(item, dict)
        ],
    }
