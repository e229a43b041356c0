"""A small TCP proxy (one thread) that `make chaos` puts between each worker and Redis, so that
one worker can be cut off from Redis while the rest of the cluster keeps it.

Three modes:

- ``forward``: bytes flow both ways, as if the worker were connected to Redis itself.
- ``stall``: nothing is read or written any more, but every socket stays open and new
  connections are accepted and held: a network that silently drops packets. On ``heal`` the
  buffered bytes flow again, so a late command of the cut-off worker reaches Redis late.
- ``refuse``: every connection is reset and new ones are reset as soon as they are accepted: a
  host that is down or a firewall that rejects.

Portable (no network namespace, no root) and precise: it cuts exactly one worker's connections.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading

FORWARD, STALL, REFUSE = "forward", "stall", "refuse"
MODES = (FORWARD, STALL, REFUSE)
CHUNK_BYTES = 65536
POLL_S = 0.05
CONNECT_TIMEOUT_S = 1.0


class _Pipe:
    """One proxied connection: the worker's socket, Redis's, and what each still has to send."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        self.pending = {client: bytearray(), upstream: bytearray()}  # bytes to write to it

    def peer(self, sock: socket.socket) -> socket.socket:
        return self.upstream if sock is self.client else self.client

    def close(self, *, reset: bool = False) -> None:
        for sock in (self.client, self.upstream):
            if reset:  # RST instead of FIN: the other side sees a dropped connection
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()


class TcpProxy:
    """Listens on 127.0.0.1 (a free port) and forwards each connection to ``target``."""

    def __init__(self, target: tuple[str, int], name: str = "proxy") -> None:
        self.target = target
        self.name = name
        self.mode = FORWARD
        self._applied = FORWARD  # the mode the loop works in since its last turn began
        self._lock = threading.Lock()
        self._turned = threading.Condition(self._lock)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self._pipes: dict[socket.socket, _Pipe] = {}
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"tcp-proxy-{name}", daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._pipes) // 2

    def start(self) -> TcpProxy:
        self._thread.start()
        return self

    def set_mode(self, mode: str) -> None:
        """Switch to ``forward``, ``stall`` or ``refuse``; returns once the loop works in it (so
        no byte is forwarded after a cut returns)."""
        if mode not in MODES:
            raise ValueError(f"unknown proxy mode {mode!r}; one of {MODES}")
        with self._turned:
            self.mode = mode
            self._turned.wait_for(
                lambda: self._applied == mode or not self._thread.is_alive(), timeout=1.0
            )

    def heal(self) -> None:
        self.set_mode(FORWARD)

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(5)
        for pipe in {id(p): p for p in self._pipes.values()}.values():
            pipe.close()
        self._pipes.clear()
        self._selector.close()
        self._listener.close()

    # --- the loop ---------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopped.is_set():
            with self._turned:
                mode = self.mode
            if mode == REFUSE and self._pipes:
                self._drop_all()
            with self._turned:
                self._applied = mode
                self._turned.notify_all()
            self._update_interest(mode)
            for key, events in self._selector.select(POLL_S):
                sock = key.fileobj
                if sock is self._listener:
                    self._accept()
                elif sock in self._pipes and mode == FORWARD:
                    self._pump(sock, events)  # type: ignore[arg-type]

    def _update_interest(self, mode: str) -> None:
        """Read and write only while forwarding; a stalled socket is left alone (kept open)."""
        for sock, pipe in list(self._pipes.items()):
            events = 0
            if mode == FORWARD:
                events = selectors.EVENT_READ
                if pipe.pending[sock]:
                    events |= selectors.EVENT_WRITE
            registered = self._selector.get_map().get(sock)
            if events and registered is None:
                self._selector.register(sock, events)
            elif events and registered.events != events:
                self._selector.modify(sock, events)
            elif not events and registered is not None:
                self._selector.unregister(sock)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        if self.mode == REFUSE:  # the mode now, not at the start of this turn: heal is at once
            _Pipe(client, client).close(reset=True)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=CONNECT_TIMEOUT_S)
        except OSError:
            client.close()  # Redis is down: the worker sees its connection closed
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pipe = _Pipe(client, upstream)
        with self._lock:
            self._pipes[client] = self._pipes[upstream] = pipe

    def _pump(self, sock: socket.socket, events: int) -> None:
        pipe = self._pipes[sock]
        if events & selectors.EVENT_READ:
            try:
                data = sock.recv(CHUNK_BYTES)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                data = b""
            if data == b"":  # closed or reset by that side: close the other side too
                self._drop(pipe)
                return
            if data:
                pipe.pending[pipe.peer(sock)] += data
                self._flush(pipe, pipe.peer(sock))
        if events & selectors.EVENT_WRITE and sock in self._pipes:
            self._flush(pipe, sock)

    def _flush(self, pipe: _Pipe, sock: socket.socket) -> None:
        """Send what ``sock`` has pending, as much as it takes now; the rest when it is writable."""
        buffer = pipe.pending[sock]
        try:
            while buffer:
                del buffer[: sock.send(buffer)]
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(pipe)

    def _drop(self, pipe: _Pipe, *, reset: bool = False) -> None:
        with self._lock:
            for sock in (pipe.client, pipe.upstream):
                self._pipes.pop(sock, None)
                if sock in self._selector.get_map():
                    self._selector.unregister(sock)
        pipe.close(reset=reset)

    def _drop_all(self) -> None:
        for pipe in {id(p): p for p in self._pipes.values()}.values():
            self._drop(pipe, reset=True)
