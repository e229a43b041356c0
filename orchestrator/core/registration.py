"""Rules for agents registered over the API (pure: no I/O, no DNS): an agent is an HTTP agent
(with an endpoint) or an LLM agent (without one, runnable once an LLM-capable worker or a worker
hosting its id is alive), clients may not set what the orchestrator manages, its metadata is
bounded, its endpoint may not point where no agent should be, and an LLM agent's ``baseUrl``
names a configured chat endpoint (MEOWSTIK_LLM_ENDPOINTS), never a URL.

Endpoints pass ``orchestrator.core.endpoints.check_endpoint`` (schemes and hosts allowlists, no
credentials), whose host list may also hold CIDRs (``10.0.0.0/8``) matching IP literals, and
never reach the always-blocked ranges, whatever the allowlist says (``*`` included): link-local
(169.254.0.0/16, where cloud metadata services answer, and fe80::/10), unspecified (0.0.0.0/8,
::), multicast, broadcast and the IPv6 cloud metadata address. IPv4 written as one number or in
hex (``http://2852039166/``) counts as the address it means. The HTTP executor checks the
address it actually connects to against the same ranges (workers/executors/http_agent.py), so a
name that resolves, or later re-resolves, to a blocked address fails the step.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any
from urllib.parse import urlsplit

from orchestrator.core.endpoints import _shown as shown_endpoint  # how its errors show a URL
from orchestrator.core.endpoints import allowed_hosts, allowed_schemes, check_endpoint
from orchestrator.core.errors import EndpointNotAllowedError, RegistrationError
from orchestrator.core.graph import check_metadata
from orchestrator.core.models import AgentDefinition, AgentExecutor
from orchestrator.core.statuses import AGENT_DERIVED
from orchestrator.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# (network, what it is): never an agent endpoint, whatever MEOWSTIK_HTTP_AGENT_ALLOWED_HOSTS says
ALWAYS_BLOCKED: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.ip_network(network), what)
    for network, what in (
        ("169.254.0.0/16", "link-local, incl. the cloud metadata address 169.254.169.254"),
        ("fe80::/10", "link-local"),
        ("0.0.0.0/8", "unspecified"),
        ("::/128", "unspecified"),
        ("224.0.0.0/4", "multicast"),
        ("ff00::/8", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("fd00:ec2::254/128", "the IPv6 cloud metadata address"),
    )
)
_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)
_FIX_BLOCKED = (
    "No setting allows these ranges; give the agent a routable address or a name that "
    "resolves to one."
)


def blocked_range(address: str | IPAddress) -> tuple[str, str] | None:
    """(network, what it is) when ``address`` is in an always-blocked range, else None.
    IPv4-mapped IPv6 addresses (``::ffff:169.254.169.254``) count as the IPv4 they carry."""
    ip = ipaddress.ip_address(address.split("%")[0] if isinstance(address, str) else address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for network, what in ALWAYS_BLOCKED:
        if ip.version == network.version and ip in network:
            return str(network), what
    return None


def literal_address(host: str) -> IPAddress | None:
    """The IP address ``host`` spells, if it is an IP literal: canonical IPv4/IPv6, or the
    legacy IPv4 forms resolvers also accept (``2852039166``, ``0xa9.0xfe.0xa9.0xfe``,
    ``169.254.43518``). None for a name."""
    bare = host.strip().removeprefix("[").removesuffix("]")
    try:
        return ipaddress.ip_address(bare.split("%")[0])
    except ValueError:
        pass
    if _LEGACY_IPV4.match(bare):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(bare))
        except OSError:
            return None
    return None


def check_agent_endpoint(url: str, settings: Settings) -> str:
    """``url`` normalised, if an HTTP agent may use it: never an always-blocked address, then
    ``check_endpoint`` (schemes, hosts, credentials), with CIDR entries of the allowed hosts
    matching IP literals.

    Raises:
        EndpointNotAllowedError: with ``details.rule`` naming the rule for blocked ranges.
    """
    schemes, hosts = allowed_schemes(settings), allowed_hosts(settings)
    try:
        host = urlsplit(url).hostname if isinstance(url, str) else None
    except ValueError:
        host = None  # check_endpoint says why the URL does not parse
    address = literal_address(host) if host else None
    if address is not None:
        blocked = blocked_range(address)
        if blocked is not None:
            network, what = blocked
            spelled = "" if str(address) == (host or "").strip("[]") else f" ({address})"
            error = EndpointNotAllowedError(
                shown_endpoint(url),
                f"host {host!r}{spelled} is in {network} ({what}), which is always blocked",
                _FIX_BLOCKED,
                allowed_schemes=schemes,
                allowed_hosts=hosts,
            )
            error.details.update({"rule": "blocked_range", "blockedRange": network})
            raise error
        if any(address in network for network in _allowed_networks(hosts)):
            settings = settings.model_copy(
                update={"http_agent_allowed_hosts": ",".join([*hosts, str(address)])}
            )
    return check_endpoint(url, settings)


def _allowed_networks(hosts: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for entry in hosts:
        if "/" in entry:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                continue  # not a CIDR: compared as a host name by check_endpoint
    return networks


def _field_error(location: str, message: str, **details: Any) -> RegistrationError:
    """A 422 naming a field of the registration body (``details.location``)."""
    field = location.removeprefix("body.")
    return RegistrationError(
        f"{location}: {message}", details={"field": field, "location": location, **details}
    )


def resolve_executor(
    body: dict[str, Any], definition: AgentDefinition, settings: Settings
) -> AgentDefinition:
    """Decide what executes an agent registered over REST, or raise RegistrationError saying why
    nothing can.

    Without an explicit ``executor``: an ``endpoint`` makes it an HTTP agent; otherwise an LLM
    agent. The spec's custom-agent body registers on every configuration: with no LLM-capable
    remote worker alive it is listed ``unhosted`` and never selected, until such a worker runs
    (MEOWSTIK_LLM_BASE_URL) or a `meowstik worker` hosting its id registers it as a Python agent
    (core/availability.py).
    """
    if definition.current_load != 0:
        raise _field_error(
            "body.currentLoad",
            "currentLoad is managed by the orchestrator (the load is derived from running "
            "steps); omit it or send 0",
            value=definition.current_load,
        )
    if definition.status in AGENT_DERIVED:
        raise _field_error(
            "body.status",
            f"status {definition.status.value!r} is derived from heartbeats; register as "
            "active, inactive or draining",
            value=definition.status.value,
        )
    check_metadata(definition.metadata, settings, "body.metadata")
    executor = definition.executor
    if "executor" not in body:
        executor = AgentExecutor.HTTP if definition.endpoint else AgentExecutor.LLM
    if executor == AgentExecutor.PYTHON:
        raise RegistrationError(
            "python agents are registered by the `meowstik worker` processes that host them; "
            "register an HTTP agent (give an endpoint) or an LLM agent instead",
            details={"field": "executor"},
        )
    if executor == AgentExecutor.HTTP:
        if not definition.endpoint:
            raise RegistrationError(
                "an HTTP agent needs an endpoint URL that receives each step as a JSON POST",
                details={"field": "endpoint"},
            )
        try:
            endpoint = check_agent_endpoint(definition.endpoint, settings)
        except EndpointNotAllowedError as exc:
            exc.message = f"body.endpoint: {exc.message}"
            exc.args = (exc.message,)
            exc.details.update({"field": "endpoint", "location": "body.endpoint"})
            raise
        _refuse_llm_fields(definition)
        return definition.model_copy(update={"executor": executor, "endpoint": endpoint})
    _check_llm_endpoint(definition, settings)
    return definition.model_copy(update={"executor": executor, "endpoint": None})


# field -> its JSON name
_LLM_ONLY_FIELDS = {
    "model": "model",
    "base_url": "baseUrl",
    "temperature": "temperature",
    "max_tokens": "maxTokens",
    "stream": "stream",
}


def _refuse_llm_fields(definition: AgentDefinition) -> None:
    """An HTTP agent's own service picks its model: LLM settings on it would be ignored."""
    for name, alias in _LLM_ONLY_FIELDS.items():
        if getattr(definition, name) is not None:
            raise _field_error(
                f"body.{alias}",
                f"{alias} applies to LLM agents only (an HTTP agent's service picks its own "
                "model); omit it or register an LLM agent without an endpoint",
            )


def _check_llm_endpoint(definition: AgentDefinition, settings: Settings) -> None:
    """An LLM agent's ``baseUrl`` must name a configured endpoint (never a URL: where an agent's
    prompts and keys go is the operator's choice, not the API client's)."""
    if definition.base_url is None:
        return
    configured = sorted(settings.llm_endpoint_table())
    if definition.base_url not in configured:
        raise _field_error(
            "body.baseUrl",
            f"no LLM endpoint named {definition.base_url!r} is configured; baseUrl names one of "
            f"{configured or 'none (set MEOWSTIK_LLM_BASE_URL or MEOWSTIK_LLM_ENDPOINTS)'}: "
            "'default' is MEOWSTIK_LLM_BASE_URL, the others come from MEOWSTIK_LLM_ENDPOINTS",
            value=definition.base_url,
            configured=configured,
        )
