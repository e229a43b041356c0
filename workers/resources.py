"""What a step run uses of its worker process besides time: the peak resident set size.

Linux only ("where the platform gives it"): VmHWM in /proc/self/status is the process's peak
RSS, and writing "5" to /proc/self/clear_refs resets it to the current RSS. A run resets it when
it starts if no other step runs in the process (prefork and solo pools run one at a time), so
its figure is its own peak; a run that shares the process with others (the threads pool)
reports the process's peak since the last reset, an upper bound. Elsewhere: None.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")
_HWM = re.compile(r"^VmHWM:\s+(\d+)\s+kB", re.MULTILINE)


class PeakRss:
    """Brackets step runs: ``start()`` before, ``stop()`` after (the peak in KiB, or None)."""

    def __init__(self, status: Path = STATUS, clear_refs: Path = CLEAR_REFS) -> None:
        self._status, self._clear_refs = status, clear_refs
        self._lock = threading.Lock()
        self._running = 0

    def start(self) -> None:
        with self._lock:
            self._running += 1
            alone = self._running == 1
        if alone:
            try:
                self._clear_refs.write_text("5")
            except OSError:  # not Linux, or not allowed: the lifetime peak, an upper bound
                pass

    def stop(self) -> int | None:
        with self._lock:
            self._running = max(self._running - 1, 0)
        try:
            found = _HWM.search(self._status.read_text())
        except OSError:
            return None
        return int(found.group(1)) if found else None
