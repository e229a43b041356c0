"""A redis-server whose data directory is a small disk of its own, so its append-only file can
meet a real "No space left on device".

The server runs in a mount namespace of its own (``unshare -m``, root) with a tmpfs mounted on
its data directory: nothing outside sees the mount. The test reaches that disk through
``/proc/<pid>/root``: it fills the disk with a ballast file, then Redis's own writes until
Redis refuses them ("MISCONF Errors writing to the AOF file: No space left on device"), and
frees it by deleting the ballast (Redis retries its AOF write every second and accepts writes
again once it succeeds).

The AOF is fsynced every second (``appendfsync everysec``, Redis's usual setting for an external
Redis): only then does Redis 6.2 refuse writes on a failed AOF write. Under ``appendfsync
always`` (the embedded Redis's, cli/embedded_redis.py) it exits instead ("Can't recover from AOF
write error when the AOF fsync policy is 'always'").
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import redis

from cli.embedded_redis import EmbeddedRedis
from cli.processes import spawn_process, stop_process_groups
from tests.support.cluster import wait_for

DISK_BYTES = 16 * 1024 * 1024
SPARE_BYTES = 256 * 1024  # what the ballast leaves for the AOF: Redis's writes use it up
BALLAST = "ballast"
FILLER_KEY = "test:disk-filler"
MOUNT_PROBE_TIMEOUT_S = 10.0


def _mount_then(command: list[str], directory: Path, size_bytes: int) -> list[str]:
    script = f'mount -t tmpfs -o size={size_bytes} tmpfs "$0" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, str(directory), *command]


def mount_unavailable(scratch: Path) -> str | None:
    """Why a tmpfs cannot be mounted in a mount namespace here (not root, no unshare, a
    container without CAP_SYS_ADMIN), or None when it can."""
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        probe = subprocess.run(
            _mount_then(["true"], scratch, 1024 * 1024),
            capture_output=True,
            timeout=MOUNT_PROBE_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare -m cannot run: {exc}"
    if probe.returncode != 0:
        return f"cannot mount a tmpfs in a mount namespace: {probe.stderr.decode().strip()}"
    return None


def fsync_every_second(command: list[str]) -> list[str]:
    """The redis-server command line with ``--appendfsync everysec``."""
    at = command.index("--appendfsync") + 1
    return [*command[:at], "everysec", *command[at + 1 :]]


class TinyDiskRedis:
    """An EmbeddedRedis with its AOF fsynced every second, on a DISK_BYTES tmpfs."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.embedded = EmbeddedRedis(data_dir, port)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.embedded.url

    @property
    def disk(self) -> Path:
        """The data directory as the server sees it (its own mount namespace)."""
        assert self.process is not None
        return Path(f"/proc/{self.process.pid}/root") / self.embedded.redis_dir.relative_to("/")

    def start(self) -> None:
        self.embedded.prepare()
        server = fsync_every_second(self.embedded.command())
        command = _mount_then(server, self.embedded.redis_dir, DISK_BYTES)
        self.process = spawn_process(command, log_path=self.embedded.log_path)
        wait_for(self.embedded.ping, 15, what=f"Redis on a tiny disk at {self.url}")

    def fill_disk(self, client: redis.Redis) -> None:
        """A ballast leaving SPARE_BYTES, then writes until Redis cannot append them to its AOF
        and refuses writes."""
        stat = os.statvfs(self.disk)
        remaining = stat.f_bavail * stat.f_frsize - SPARE_BYTES
        with open(self.disk / BALLAST, "wb") as ballast:
            while remaining > 0:
                remaining -= ballast.write(b"\0" * min(remaining, 1024 * 1024))
        chunk = b"x" * 64 * 1024
        for _ in range(10 * SPARE_BYTES // len(chunk) + 100):
            try:
                client.append(FILLER_KEY, chunk)
            except redis.ResponseError as exc:
                assert "AOF" in str(exc), exc
                return
        raise AssertionError("Redis never refused a write on a full disk")

    def free_disk(self) -> None:
        (self.disk / BALLAST).unlink()

    def stop(self) -> None:
        if self.process is not None:
            stop_process_groups([self.process])
            self.process = None
