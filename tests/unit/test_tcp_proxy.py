"""The chaos tool's TCP proxy (tools/tcp_proxy.py) in front of a small echo server: it forwards,
stalls with the connection kept open (the bytes arrive after healing), refuses by resetting
connections, and forwards again once healed."""

from __future__ import annotations

import socket
import socketserver
import threading

import pytest

from tools.tcp_proxy import REFUSE, STALL, TcpProxy

WAIT_S = 5.0  # the longest any answer may take when the proxy forwards
QUIET_S = 0.5  # how long a stalled connection must stay silent


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def proxy():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    running = TcpProxy(server.server_address, "test").start()
    yield running
    running.close()
    server.shutdown()
    server.server_close()


def connect(proxy: TcpProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=WAIT_S)


def echo(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_bytes_flow_both_ways_through_the_proxy(proxy):
    with connect(proxy) as sock:
        payload = bytes(range(256)) * 4096  # 1 MiB: more than one read and one write
        assert echo(sock, payload) == payload
    assert proxy.url == f"redis://127.0.0.1:{proxy.port}/0"


def test_a_stalled_proxy_keeps_the_connection_and_delivers_after_healing(proxy):
    with connect(proxy) as sock:
        assert echo(sock, b"before") == b"before"
        # When it stalls, nothing comes back, yet the connection stays open
        proxy.set_mode(STALL)
        sock.sendall(b"during")
        sock.settimeout(QUIET_S)
        with pytest.raises(TimeoutError):
            sock.recv(64)
        # Then once healed, what was sent meanwhile arrives
        proxy.heal()
        sock.settimeout(WAIT_S)
        assert sock.recv(64) == b"during"


def answers(sock: socket.socket, payload: bytes) -> bool:
    """Whether the payload comes back whole (a reset or closed connection: False)."""
    try:
        return echo(sock, payload) == payload
    except OSError:
        return False


def new_connection_answers(proxy: TcpProxy) -> bool:
    """Whether a new connection is accepted and forwarded (reset while connecting: False)."""
    try:
        with connect(proxy) as sock:
            return answers(sock, b"ping")
    except OSError:
        return False


def test_a_refusing_proxy_resets_connections_until_it_heals(proxy):
    with connect(proxy) as sock:
        assert answers(sock, b"ping")
        # When it refuses, the open connection is reset, and so is a new one
        proxy.set_mode(REFUSE)
        assert not answers(sock, b"ping")
    assert not new_connection_answers(proxy)
    # Then once healed, a new connection is forwarded again
    proxy.heal()
    assert new_connection_answers(proxy)
