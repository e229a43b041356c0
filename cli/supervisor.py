"""Runs the local cluster's child processes: start them, wait until they serve, restart those
that crash (with the backoff of ``ManagedProcess``), retire replicas, and stop them all stage by
stage on SIGINT or SIGTERM.

How a single child is started and stopped, without leaving orphans, is in ``processes``; the
errors are in ``supervisor_errors``.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from cli.processes import (
    DEFAULT_STOP_GRACE_S,
    ManagedProcess,
    has_exited,
    reap_process_group,
    stop_process_groups,
)
from cli.supervisor_errors import ChildExitedError, NotReadyError

IDLE_CHECK_INTERVAL_S = 1.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
