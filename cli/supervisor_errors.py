"""The errors of `meowstik up`'s process supervision, so commands can tell them apart:

SupervisorError
├── PortInUseError      a port a child must listen on is taken
├── ChildExitedError    a child exited while the cluster was starting
└── NotReadyError       a readiness condition did not hold before its deadline
"""

from __future__ import annotations

from pathlib import Path


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
