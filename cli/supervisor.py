"""Runs the local cluster's child processes: start them, restart them with backoff, stop them
without leaving orphans.

Every child runs in its own session, so a Ctrl-C in the terminal reaches only the supervisor,
which then stops the children in order; on Linux every child also gets PR_SET_PDEATHSIG=SIGTERM,
so a supervisor killed with SIGKILL still takes its children with it.

A child is stopped with SIGTERM to its leader, then SIGKILL to its whole process group. The leader
alone gets SIGTERM because that is the graceful shutdown each server documents (Celery's warm
shutdown, gunicorn's graceful stop, Redis's AOF fsync), whereas billiard's pool processes treat a
SIGTERM of their own as "exit now" and would abort running steps. The group SIGKILL afterwards
removes whatever the leader left behind. A leader is never reaped before that SIGKILL, so its pid,
which is also the group id, cannot have been reused by an unrelated process.

Errors:

    SupervisorError
    ├── PortInUseError      a port a child must listen on is taken
    ├── ChildExitedError    a child exited while the cluster was starting
    └── NotReadyError       a readiness condition did not hold before its deadline
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

PR_SET_PDEATHSIG = 1
DEFAULT_STOP_GRACE_S = 12.0
RESTART_BACKOFF_INITIAL_S = 1.0
RESTART_BACKOFF_MAX_S = 30.0
LOG_TAIL_LINES = 20
EXIT_POLL_INTERVAL_S = 0.05
IDLE_CHECK_INTERVAL_S = 1.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SupervisorError(Exception):
    """The local cluster could not be started or kept running."""


class PortInUseError(SupervisorError):
    def __init__(self, host: str, port: int, setting: str) -> None:
        self.host = host
        self.port = port
        self.setting = setting
        super().__init__(
            f"{host}:{port} is already in use. Stop the process listening there, "
            f"or set {setting} to a free port."
        )


class ChildExitedError(SupervisorError):
    def __init__(
        self, name: str, exit_code: int | None, log_path: Path | None, log_tail: str
    ) -> None:
        self.name = name
        self.exit_code = exit_code
        self.log_path = log_path
        self.log_tail = log_tail
        where = f" (log: {log_path})" if log_path else ""
        super().__init__(
            f"{name} exited with code {exit_code} while the cluster was starting{where}. "
            f"Its last output:\n{log_tail or '(no output)'}"
        )


class NotReadyError(SupervisorError):
    def __init__(self, what: str, timeout_s: float) -> None:
        self.what = what
        self.timeout_s = timeout_s
        super().__init__(f"timed out after {timeout_s:g}s waiting for {what}.")


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


@dataclass
class Supervisor:
    """Starts children, waits on readiness conditions, restarts crashed children, stops them all.

    Signals reach it through a self-pipe (signal.set_wakeup_fd), so waiting never races a signal
    and a child's exit (SIGCHLD) wakes the loop at once.
    """

    out: TextIO = field(default_factory=lambda: sys.stderr)
    grace_s: float = DEFAULT_STOP_GRACE_S
    clock: Callable[[], float] = time.monotonic
    children: list[ManagedProcess] = field(default_factory=list)
    stop_signal: int | None = None
    force_stop: bool = False
    _wake_fds: tuple[int, int] | None = None
    _previous_handlers: dict[int, object] = field(default_factory=dict)
    _previous_wakeup_fd: int = -1

    @property
    def stop_requested(self) -> bool:
        return self.stop_signal is not None

    def install_signal_handlers(self) -> None:
        """Handle SIGINT/SIGTERM as "stop", and wake on SIGCHLD. Call from the main thread."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self._wake_fds = (read_fd, write_fd)
        self._previous_wakeup_fd = signal.set_wakeup_fd(write_fd)
        for signum in STOP_SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._on_stop_signal)
        self._previous_handlers[signal.SIGCHLD] = signal.signal(
            signal.SIGCHLD, self._on_child_signal
        )

    def restore_signal_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous_handlers.clear()
        if self._wake_fds is not None:
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            for fd in self._wake_fds:
                os.close(fd)
            self._wake_fds = None

    def _on_stop_signal(self, signum: int, frame: object) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
        else:  # a second Ctrl-C: stop waiting for graceful shutdowns
            self.force_stop = True

    def _on_child_signal(self, signum: int, frame: object) -> None:
        """Nothing to do here: the wakeup fd already woke the loop."""

    def wait(self, timeout_s: float) -> None:
        """Block until a signal arrives or timeout_s passes."""
        if self._wake_fds is None:
            time.sleep(timeout_s)
            return
        read_fd = self._wake_fds[0]
        readable, _, _ = select.select([read_fd], [], [], max(timeout_s, 0.0))
        if readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(read_fd, 512):
                    pass

    def start(self, child: ManagedProcess) -> None:
        child.start(self.clock())
        self.children.append(child)

    def raise_if_any_exited(self) -> None:
        """Raise ChildExitedError for the first child found dead (used while starting up)."""
        for child in self.children:
            if child.process is not None and has_exited(child.process):
                exit_code = reap_process_group(child.process)
                raise ChildExitedError(child.name, exit_code, child.log_path, child.log_tail())

    def wait_until(
        self, condition: Callable[[], bool], *, what: str, timeout_s: float, poll_s: float = 0.2
    ) -> bool:
        """Poll condition until it holds (True) or a stop is requested (False).

        Raises:
            ChildExitedError: a child died meanwhile.
            NotReadyError: the condition still failed after timeout_s.
        """
        deadline = self.clock() + timeout_s
        while True:
            self.raise_if_any_exited()
            if self.stop_requested:
                return False
            if condition():
                return True
            if self.clock() >= deadline:
                raise NotReadyError(what, timeout_s)
            self.wait(min(poll_s, max(deadline - self.clock(), 0.0)))

    def run_until_stopped(
        self, tick: Callable[[], None] | None = None, tick_interval_s: float = IDLE_CHECK_INTERVAL_S
    ) -> None:
        """Keep the children alive until SIGINT or SIGTERM, restarting any that die, and call
        tick (the autoscaler) every tick_interval_s."""
        next_tick = self.clock()
        while not self.stop_requested:
            self.restart_crashed_children()
            if tick is not None and self.clock() >= next_tick:
                tick()
                next_tick = self.clock() + tick_interval_s
            wait_s = self._seconds_until_next_check()
            if tick is not None:
                wait_s = min(wait_s, max(next_tick - self.clock(), 0.0))
            self.wait(wait_s)

    def _seconds_until_next_check(self) -> float:
        due = [child.restart_at for child in self.children if child.restart_at is not None]
        due += [child.retire_by for child in self.children if child.retire_by is not None]
        if not due:
            return IDLE_CHECK_INTERVAL_S
        return min(max(min(due) - self.clock(), 0.0), IDLE_CHECK_INTERVAL_S)

    def retire(self, child: ManagedProcess) -> None:
        """Stop child for good without waiting here: SIGTERM now (a warm shutdown); the loop
        forgets it once it exits, and SIGKILLs its group if it outlives the stop grace."""
        child.restart_at = None
        child.retire_by = self.clock() + self.grace_s
        if child.process is not None and not has_exited(child.process):
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)

    def restart_crashed_children(self) -> None:
        """Reap children that died and schedule their restart; start those whose backoff is over."""
        now = self.clock()
        for child in list(self.children):
            if child.retire_by is not None:
                self._retire_if_done(child, now)
            elif child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts += 1
                    child.start(now)
                    pid = child.process.pid if child.process else None
                    self.say(f"restarted {child.name} (pid {pid}, restart #{child.restarts})")
            elif child.process is not None and has_exited(child.process):
                exit_code = reap_process_group(child.process)
                delay_s = child.schedule_restart(now)
                tail = child.log_tail()
                self.say(
                    f"{child.name} exited unexpectedly with code {exit_code}; restarting it in "
                    f"{delay_s:g}s. Last output ({child.log_path}):\n{tail or '(no output)'}"
                )

    def _retire_if_done(self, child: ManagedProcess, now: float) -> None:
        process = child.process
        exited = process is None or has_exited(process)
        if not exited and child.retire_by is not None and now < child.retire_by:
            return
        exit_code = reap_process_group(process) if process is not None else None
        self.children.remove(child)
        how = "stopped" if exited else "killed after the stop grace"
        self.say(f"{child.name} {how} (exit code {exit_code})")

    def shutdown(self, after_first_stage: Callable[[], None] | None = None) -> None:
        """Stop every running child, stage by stage (lowest stop_stage first), calling
        after_first_stage once the first stage is stopped (workers and API; Redis, when we run
        it, is a later stage and still answers)."""
        for index, stage in enumerate(sorted({child.stop_stage for child in self.children})):
            processes = [
                child.process
                for child in self.children
                if child.stop_stage == stage and child.running and child.process is not None
            ]
            stop_process_groups(processes, self.grace_s, forced=lambda: self.force_stop)
            if index == 0 and after_first_stage is not None:
                after_first_stage()
        for child in self.children:
            child.restart_at = None

    def say(self, message: str) -> None:
        print(f"meowstik up: {message}", file=self.out, flush=True)
