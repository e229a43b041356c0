"""API capacity: a load generator on loopback and the reference app it is compared with.

`load()` drives one URL with wrk when it is installed (the figures are then wrk's own), or with
a built-in generator of keep-alive connections in separate processes otherwise; the result says
which. `MinimalApp` serves benchmarks.minimal_app under the product API's gunicorn command with
only the app replaced, so a ratio of the two measures the API's routes and nothing else.

Run `python -m benchmarks.http_load` for the reference app's own figures.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

from benchmarks import load_worker
from cli.commands import api_command
from tests.support.cluster import wait_for
from tests.support.redis_server import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
MINIMAL_APP = "benchmarks.minimal_app:create_app()"
REQUEST_TIMEOUT_S = 10  # a request slower than this is a timeout error, not a slow success
READY_TIMEOUT_S = 60  # for every built-in generator process to start
LOAD_WORKER = Path(load_worker.__file__)
_WRK_MARK = "MEOWSTIK_WRK_RESULT "


Target = str | Callable[[], str]  # a URL, or a callable making it when the load starts


def _resolve(url: Target) -> str:
    return url() if callable(url) else url


@dataclass
class LoadResult:
    generator: str  # "wrk 4.1.0" or "python"
    requests: int  # responses received, whatever their status
    errors: int  # non-2xx responses plus socket errors
    duration_s: float
    requests_per_s: float  # successful (2xx) responses per second
    latency_ms: dict = field(default_factory=dict)  # {"p50": .., "p99": ..} when measured


def load(
    url: Target,
    *,
    method: str = "GET",
    body: dict | None = None,
    headers: dict | None = None,
    duration_s: float = 5.0,
    connections: int = 8,
    threads: int = 2,
) -> LoadResult:
    """Send requests to ``url`` over ``connections`` keep-alive connections for ``duration_s``.

    ``url`` may be a callable returning it, called once the generator is ready to send: a target
    that must still exist when the last request goes out (a finished session, which expires its
    retention after its end) is then made after the generator has started, not before.
    With wrk, ``threads`` is wrk's thread count and the duration is whole seconds (wrk's unit);
    the built-in generator runs one process per connection and ignores ``threads``.
    """
    wrk = shutil.which("wrk")
    if wrk:
        return _load_wrk(wrk, url, method, body, headers, duration_s, connections, threads)
    return _load_python(url, method, body, headers, duration_s, connections)


def _request_headers(body: dict | None, headers: dict | None) -> dict[str, str]:
    merged = {"Content-Type": "application/json"} if body is not None else {}
    merged.update(headers or {})
    return merged


def _percentiles_ms(values_ms: list[float]) -> dict:
    if not values_ms:
        return {}
    ordered = sorted(values_ms)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": pick(0.5), "p99": pick(0.99)}


# --- wrk ------------------------------------------------------------------------------------


def _lua_string(text: str) -> str:
    """A Lua literal for any text: every byte as a three-digit escape, so nothing needs quoting."""
    return '"' + "".join(f"\\{byte:03d}" for byte in text.encode()) + '"'


def _wrk_script(method: str, body: dict | None, headers: dict[str, str]) -> str:
    """Sets the request, counts non-2xx per thread (wrk's own status error count is >= 400
    only) and prints one JSON line of totals and latency percentiles from done()."""
    lines = [f"wrk.method = {_lua_string(method)}"]
    if body is not None:
        lines.append(f"wrk.body = {_lua_string(json.dumps(body))}")
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    lines.append(
        """
non2xx = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local non2xx_total = 0
  for _, thread in ipairs(threads) do
    non2xx_total = non2xx_total + thread:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    '%s{"requests": %d, "duration_us": %d, "non2xx": %d, "status_errors": %d, '
    .. '"socket_errors": %d, "p50_us": %d, "p99_us": %d}\\n',
    "%MARK%", summary.requests, summary.duration, non2xx_total, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
""".replace("%MARK%", _WRK_MARK)
    )
    return "\n".join(lines)


def _wrk_version(wrk: str) -> str:
    # `wrk -v` prints "wrk debian/4.1.0-3+b2 [epoll] ..." (and exits non-zero)
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10)
    found = re.search(r"(\d+\.\d+\.\d+)", out.stdout + out.stderr)
    return f"wrk {found.group(1)}" if found else "wrk"


def _load_wrk(
    wrk: str,
    url: Target,
    method: str,
    body: dict | None,
    headers: dict | None,
    duration_s: float,
    connections: int,
    threads: int,
) -> LoadResult:
    seconds = max(1, round(duration_s))  # wrk takes whole seconds
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="http_load_") as script:
        script.write(_wrk_script(method, body, _request_headers(body, headers)))
        script.flush()
        command = [
            wrk,
            "--threads", str(max(1, min(threads, connections))),
            "--connections", str(connections),
            "--duration", f"{seconds}s",
            "--timeout", f"{REQUEST_TIMEOUT_S}s",
            "--script", script.name,
            _resolve(url),
        ]  # fmt: skip
        run = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    marked = [line for line in run.stdout.splitlines() if line.startswith(_WRK_MARK)]
    if run.returncode != 0 or not marked:
        raise RuntimeError(f"wrk failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    totals = json.loads(marked[-1].removeprefix(_WRK_MARK))
    duration = totals["duration_us"] / 1e6
    successes = totals["requests"] - totals["non2xx"]
    return LoadResult(
        generator=_wrk_version(wrk),
        requests=totals["requests"],
        errors=totals["non2xx"] + totals["socket_errors"],
        duration_s=duration,
        requests_per_s=successes / duration if duration else 0.0,
        latency_ms={"p50": totals["p50_us"] / 1000, "p99": totals["p99_us"] / 1000},
    )


# --- built-in generator ---------------------------------------------------------------------


def _load_python(
    url: Target,
    method: str,
    body: dict | None,
    headers: dict | None,
    duration_s: float,
    connections: int,
) -> LoadResult:
    # one process per connection, each running load_worker.py by path on the standard library
    # alone (-I: no script directory, no PYTHON* variables), so none imports the product and
    # all are ready within tens of milliseconds, not the seconds a full import takes each
    command = [sys.executable, "-I", str(LOAD_WORKER)]
    workers: list[subprocess.Popen] = []
    try:
        for _ in range(connections):
            workers.append(
                subprocess.Popen(
                    command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
            )
        ready_by = time.monotonic() + READY_TIMEOUT_S
        for worker in workers:  # every process is up before any clock starts
            _await_ready(worker, ready_by)
        work = json.dumps(_worker_config(_resolve(url), method, body, headers, duration_s))
        for worker in workers:  # the work is the go signal
            assert worker.stdin is not None
            worker.stdin.write(f"{work}\n".encode())
            worker.stdin.flush()
        outcomes = [_outcome(worker, duration_s + 60) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.communicate(timeout=5)  # reap it and close its pipes
    by_status: dict[int, int] = {}
    for outcome in outcomes:
        for status, count in outcome["byStatus"].items():
            by_status[int(status)] = by_status.get(int(status), 0) + count
    socket_errors = sum(outcome["socketErrors"] for outcome in outcomes)
    duration = max(outcome["elapsedS"] for outcome in outcomes)
    responses = sum(by_status.values())
    successes = sum(count for status, count in by_status.items() if 200 <= status < 300)
    return LoadResult(
        generator="python",
        requests=responses,
        errors=responses - successes + socket_errors,
        duration_s=duration,
        requests_per_s=successes / duration if duration else 0.0,
        latency_ms=_percentiles_ms([ms for o in outcomes for ms in o["latenciesMs"]]),
    )


def _worker_config(
    url: str, method: str, body: dict | None, headers: dict | None, duration_s: float
) -> dict:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError(f"the built-in generator speaks plain http only: {url}")
    return {
        "host": parts.hostname,
        "port": parts.port or 80,
        "method": method,
        "target": (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        "body": json.dumps(body) if body is not None else None,
        "headers": _request_headers(body, headers),
        "duration_s": duration_s,
        "timeout_s": REQUEST_TIMEOUT_S,
    }


def _failed(worker: subprocess.Popen, what: str) -> RuntimeError:
    if worker.poll() is None:
        worker.kill()
    _, stderr = worker.communicate(timeout=5)
    return RuntimeError(
        f"load generator process {what} (exit {worker.returncode}):\n"
        f"{stderr.decode(errors='replace')[-3000:]}"
    )


def _await_ready(worker: subprocess.Popen, ready_by: float) -> None:
    assert worker.stdout is not None
    readable, _, _ = select.select([worker.stdout], [], [], max(0.0, ready_by - time.monotonic()))
    if not readable:
        raise _failed(worker, f"not ready in {READY_TIMEOUT_S} s")
    line = worker.stdout.readline()  # the one line it writes before go: nothing is over-read
    if line.decode().strip() != load_worker.READY:
        raise _failed(worker, f"did not start ({line!r})")


def _outcome(worker: subprocess.Popen, timeout_s: float) -> dict:
    try:
        stdout, stderr = worker.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise _failed(worker, f"still running after {timeout_s} s") from None
    lines = stdout.decode().splitlines()
    if worker.returncode != 0 or not lines:
        raise RuntimeError(
            f"load generator process exited with {worker.returncode}:\n"
            f"{stderr.decode(errors='replace')[-3000:]}"
        )
    return json.loads(lines[-1])


# --- reference app --------------------------------------------------------------------------


class MinimalApp:
    """The reference app under the same gunicorn command; context manager."""

    def __init__(self, processes: int, threads: int, log_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_dir) / "minimal-app.log"
        command = api_command("127.0.0.1", self.port, processes, threads)
        if command[-1] != "api:create_app()":
            raise RuntimeError(f"api_command no longer ends with the app: {command}")
        self.command = [*command[:-1], MINIMAL_APP]  # same settings, --config included
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> MinimalApp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEOWSTIK_")}
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for(self._ready, timeout_s=60, interval_s=0.1, what=f"{MINIMAL_APP} on {self.url}")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            log = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"minimal app exited with {self.process.returncode}:\n{log}")
        try:
            return requests.get(f"{self.url}/ping", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def __exit__(self, *exc: object) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        try:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(15)
        except subprocess.TimeoutExpired:
            pass
        finally:
            try:  # the group may still hold workers even when the arbiter is gone
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(5)


def _describe(what: str, result: LoadResult) -> str:
    latency = ", ".join(f"{k} {v:.2f} ms" for k, v in result.latency_ms.items()) or "-"
    return (
        f"{what:<11} {result.requests_per_s:8.0f} req/s  {result.requests} requests, "
        f"{result.errors} errors in {result.duration_s:.2f} s  latency {latency}  "
        f"[{result.generator}]"
    )


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp, MinimalApp(1, 8, Path(tmp)) as app:
        ping = load(f"{app.url}/ping", duration_s=5)
        echo = load(f"{app.url}/echo", method="POST", body={"goal": "echo"}, duration_s=5)
    print(f"minimal Flask app, gunicorn 1 process x 8 threads, {os.cpu_count()} CPUs")
    print(_describe("GET /ping", ping))
    print(_describe("POST /echo", echo))
    print(ping)
    print(echo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
