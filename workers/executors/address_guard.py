"""The SSRF guard of HTTP agents' connections: a requests adapter whose every new connection
checks the address it actually reached, and refuses an always-blocked one (link-local,
multicast, ...; see ``orchestrator.core.registration.blocked_range``).

Registration checks an agent's endpoint when it is registered, but a name can resolve to
another address later (DNS rebinding, a bad record), so the check is repeated on the socket
itself, after connecting and before a byte of the request is sent.
"""

from __future__ import annotations

from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from orchestrator.core.registration import blocked_range


class BlockedAddressError(Exception):
    """The connection of a guarded POST reached an always-blocked address."""

    def __init__(self, host: str, address: str, network: str, what: str) -> None:
        super().__init__(f"{host!r} resolved to {address}, in {network} ({what})")
        self.host, self.address, self.network, self.what = host, address, network, what


def check_peer(sock: Any, host: str) -> None:
    """Close ``sock`` and raise BlockedAddressError when its peer is an always-blocked address:
    the check sees the address actually connected to, whatever DNS answered before."""
    peer = sock.getpeername()[0]
    blocked = blocked_range(peer)
    if blocked is not None:
        sock.close()
        raise BlockedAddressError(host, peer, *blocked)


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> Any:
        sock = super()._new_conn()
        check_peer(sock, self.host)
        return sock


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> Any:  # TLS is set up on this socket afterwards
        sock = super()._new_conn()
        check_peer(sock, self.host)
        return sock


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections check the address they reach (check_peer)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPPool,
            "https": _GuardedHTTPSPool,
        }
