"""The local cluster's child processes, one at a time: start one in its own session, tell
whether it exited without reaping it, stop process groups without leaving orphans, and
``ManagedProcess``, one child with its restart backoff.

Every child runs in its own session, so a Ctrl-C in the terminal reaches only the supervisor,
which then stops the children in order; on Linux every child also gets PR_SET_PDEATHSIG=SIGTERM,
so a supervisor killed with SIGKILL still takes its children with it.

A child is stopped with SIGTERM to its leader, then SIGKILL to its whole process group. The leader
alone gets SIGTERM because that is the graceful shutdown each server documents (Celery's warm
shutdown, gunicorn's graceful stop, Redis's AOF fsync), whereas billiard's pool processes treat a
SIGTERM of their own as "exit now" and would abort running steps. The group SIGKILL afterwards
removes whatever the leader left behind. A leader is never reaped before that SIGKILL, so its pid,
which is also the group id, cannot have been reused by an unrelated process.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cli.supervisor_errors import PortInUseError, SupervisorError

PR_SET_PDEATHSIG = 1
DEFAULT_STOP_GRACE_S = 12.0
RESTART_BACKOFF_INITIAL_S = 1.0
RESTART_BACKOFF_MAX_S = 30.0
LOG_TAIL_LINES = 20
EXIT_POLL_INTERVAL_S = 0.05


def ensure_port_free(host: str, port: int, *, setting: str) -> None:
    """Raise PortInUseError if something listens on host:port, so we fail with a clear message.

    SO_REUSEADDR matches what Redis and gunicorn set, so a socket in TIME_WAIT does not count.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(host, port, setting) from exc
            raise SupervisorError(f"cannot bind {host}:{port}: {exc}") from exc


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A preexec function: deliver SIGTERM to the child when the supervisor dies."""

    def preexec() -> None:
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent_pid:  # the supervisor died before prctl took effect
            os._exit(1)

    return preexec


def spawn_process(
    argv: Sequence[str], *, env: dict[str, str] | None = None, log_path: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start argv in a new session that dies with this process; stdout and stderr go to log_path.

    Raises:
        SupervisorError: the program could not be executed.
    """
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    try:
        return subprocess.Popen(
            list(argv),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )
    except OSError as exc:
        raise SupervisorError(f"cannot start {argv[0]}: {exc}") from exc
    finally:
        if log_path:
            log.close()  # type: ignore[union-attr]


def has_exited(process: subprocess.Popen[bytes]) -> bool:
    """Whether process has exited, without reaping it (its pid stays reserved as a zombie)."""
    if process.returncode is not None:
        return True
    try:
        state = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return state is not None


def reap_process_group(process: subprocess.Popen[bytes]) -> int:
    """SIGKILL what is left of process's group, then reap the leader; return its exit code."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    return process.wait()


def stop_process_groups(
    processes: Sequence[subprocess.Popen[bytes]],
    grace_s: float = DEFAULT_STOP_GRACE_S,
    *,
    forced: Callable[[], bool] = lambda: False,
) -> None:
    """SIGTERM every leader, wait up to grace_s (or until forced()), then SIGKILL each group."""
    running = [process for process in processes if process.returncode is None]
    for process in running:
        if not has_exited(process):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and not forced():
        if all(has_exited(process) for process in running):
            break
        time.sleep(EXIT_POLL_INTERVAL_S)
    for process in running:
        reap_process_group(process)


def read_log_tail(log_path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a child's log file, or "" if there is none."""
    if log_path is None or not log_path.exists():
        return ""
    with open(log_path, "rb") as log:
        tail = deque(log, maxlen=lines)
    return b"".join(tail).decode("utf-8", errors="replace").rstrip()


@dataclass
class ManagedProcess:
    """One child of the cluster: how to start it, its current process, and its restart state.

    Children with a lower stop_stage are stopped first (workers and API before Redis).
    """

    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    log_path: Path | None = None
    stop_stage: int = 0
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    consecutive_failures: int = 0
    restart_at: float | None = None
    retire_by: float | None = None  # stopping for good: SIGKILL its group after this moment

    def start(self, now: float) -> None:
        self.process = spawn_process(self.argv, env=self.env, log_path=self.log_path)
        self.started_at = now
        self.restart_at = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def schedule_restart(self, now: float) -> float:
        """Plan the next start with exponential backoff, starting over after a long run."""
        if now - self.started_at >= RESTART_BACKOFF_MAX_S:
            self.consecutive_failures = 0
        delay_s = min(
            RESTART_BACKOFF_INITIAL_S * 2**self.consecutive_failures, RESTART_BACKOFF_MAX_S
        )
        self.consecutive_failures += 1
        self.restart_at = now + delay_s
        return delay_s

    def log_tail(self) -> str:
        return read_log_tail(self.log_path)
