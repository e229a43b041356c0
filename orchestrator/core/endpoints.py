"""Which URLs an HTTP agent may be given (pure: no I/O, no DNS).

An HTTP agent's endpoint comes from whoever registered the agent over the API, and the remote
executor POSTs every step's context (goal, shared state, dependency outputs) to it. The allowlist
keeps a registration from turning the executor into a proxy into networks it can reach: only the
schemes in ``MEOWSTIK_HTTP_AGENT_ALLOWED_SCHEMES`` and the hosts in
``MEOWSTIK_HTTP_AGENT_ALLOWED_HOSTS`` pass. Hosts are compared as written, case-insensitively
(IP literals in canonical form); names are not resolved, so allow names you trust.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import SplitResult, urlsplit, urlunsplit

from orchestrator.core.errors import EndpointNotAllowedError
from orchestrator.settings import Settings

MAX_ENDPOINT_CHARS = 2048
ANY_HOST = "*"
SCHEMES_SETTING = "MEOWSTIK_HTTP_AGENT_ALLOWED_SCHEMES"
HOSTS_SETTING = "MEOWSTIK_HTTP_AGENT_ALLOWED_HOSTS"
_FIX_URL = "Correct the endpoint URL."
_SHOWN_ENDPOINT_CHARS = 200
_PASSWORD = re.compile(r"(//[^/?#@:]*:)[^/?#]*@")  # the password in //user:password@


def allowed_schemes(settings: Settings) -> list[str]:
    """The schemes HTTP agents may use, lowercased, from MEOWSTIK_HTTP_AGENT_ALLOWED_SCHEMES."""
    return _split(settings.http_agent_allowed_schemes, lower=True)


def allowed_hosts(settings: Settings) -> list[str]:
    """The hosts HTTP agents may use, as configured; ``*`` means any host."""
    return _split(settings.http_agent_allowed_hosts, lower=False)


def check_endpoint(url: str, settings: Settings) -> str:
    """Return ``url`` normalised (lowercase scheme and host, no fragment) if an HTTP agent may
    use it.

    Raises:
        EndpointNotAllowedError: the URL is too long, unparseable, has a scheme or host outside
            the allowlist, has no host, or carries credentials (``user:pass@``), which would be
            stored in the registry and shown in listings.
    """
    schemes, hosts = allowed_schemes(settings), allowed_hosts(settings)
    problem = _syntax_problem(url)
    if problem is None:
        parts = urlsplit(url)
        problem = _scheme_problem(parts.scheme.lower(), schemes) or _host_problem(parts, hosts)
    if problem is not None:
        reason, fix = problem
        raise EndpointNotAllowedError(
            _shown(url), reason, fix, allowed_schemes=schemes, allowed_hosts=hosts
        )
    host = _canonical_host(parts.hostname or "")
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, ""))


def _syntax_problem(url: object) -> tuple[str, str] | None:
    """Why ``url`` is not a usable URL at all, with how to fix it; None if it parses."""
    if not isinstance(url, str) or not url:
        return "it is not a non-empty string", _FIX_URL
    if len(url) > MAX_ENDPOINT_CHARS:
        return f"it is {len(url)} characters long, over {MAX_ENDPOINT_CHARS}", _FIX_URL
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        return "it contains whitespace or control characters", _FIX_URL
    try:
        urlsplit(url).port  # noqa: B018 - parsing the port validates it (range, digits)
    except ValueError as exc:
        return f"it cannot be parsed as a URL ({exc})", _FIX_URL
    return None


def _scheme_problem(scheme: str, schemes: list[str]) -> tuple[str, str] | None:
    if scheme in schemes:
        return None
    return (
        f"scheme {scheme or '(none)'!r} is not one of {', '.join(schemes) or '(none)'}",
        f"Use an allowed scheme, or add it to {SCHEMES_SETTING}.",
    )


def _host_problem(parts: SplitResult, hosts: list[str]) -> tuple[str, str] | None:
    if parts.username is not None or parts.password is not None:
        return (
            "it contains credentials (user:password@)",
            "Remove them from the URL; no setting allows credentials in endpoints.",
        )
    if not parts.hostname:
        return "it has no host", _FIX_URL
    host = _canonical_host(parts.hostname)
    if ANY_HOST in hosts or host in {_canonical_host(allowed) for allowed in hosts}:
        return None
    return (
        f"host {host!r} is not in the allowed hosts ({', '.join(hosts) or 'none'})",
        f"Use an allowed host, or add {host!r} to {HOSTS_SETTING} ('*' allows any host).",
    )


def _split(value: str, *, lower: bool) -> list[str]:
    items = [item.strip() for item in value.split(",")]
    return [item.lower() if lower else item for item in items if item]


def _canonical_host(host: str) -> str:
    """Lowercase, without IPv6 brackets; IP literals in canonical form so ``::1`` matches
    ``0:0:0:0:0:0:0:1``."""
    bare = host.strip().removeprefix("[").removesuffix("]").lower()
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return bare


def _shown(url: object) -> str:
    """The endpoint as an error may show it: truncated, and with any password masked."""
    if not isinstance(url, str):
        return repr(url)
    shown = url[:_SHOWN_ENDPOINT_CHARS] + ("..." if len(url) > _SHOWN_ENDPOINT_CHARS else "")
    return _PASSWORD.sub(r"\1***@", shown)
