"""One connection of benchmarks/http_load.py's built-in load generator, as its own process.

Run by path with the standard library only (``python -I benchmarks/load_worker.py``), so a
process is ready to send within tens of milliseconds: importing the benchmarks package instead
would import the product (pydantic models, Redis, Celery) in every process, and with a handful
of processes on a small machine that took seconds before the first request was sent.

Protocol on the standard streams: the process prints ``ready``, then reads one line from stdin,
the go signal and the work in one: a JSON object (host, port, method, target, body as text or
null, headers, duration_s, timeout_s). At EOF instead (the parent gave up or is gone) it exits
without sending. It sends back to back on one keep-alive connection for duration_s, then prints
one JSON line: responses by status, socket errors, the seconds it ran and every response's
latency in milliseconds.
"""

from __future__ import annotations

import http.client
import json
import sys
import time

READY = "ready"


def run(
    host: str,
    port: int,
    method: str,
    target: str,
    body: bytes | None,
    headers: dict[str, str],
    duration_s: float,
    timeout_s: float,
) -> dict:
    """Send requests back to back for ``duration_s``, reconnecting after a socket error."""
    by_status: dict[int, int] = {}
    socket_errors = 0
    latencies_ms: list[float] = []
    connection: http.client.HTTPConnection | None = None
    start = time.monotonic()
    deadline = start + duration_s
    while time.monotonic() < deadline:
        sent = time.perf_counter()
        try:
            if connection is None:
                connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            socket_errors += 1
            if connection is not None:
                connection.close()
            connection = None
            continue
        latencies_ms.append((time.perf_counter() - sent) * 1000)
        by_status[response.status] = by_status.get(response.status, 0) + 1
        if response.will_close:
            connection.close()
            connection = None
    elapsed = time.monotonic() - start
    if connection is not None:
        connection.close()
    return {
        "byStatus": by_status,
        "socketErrors": socket_errors,
        "elapsedS": elapsed,
        "latenciesMs": latencies_ms,
    }


def main() -> int:
    print(READY, flush=True)
    line = sys.stdin.readline()
    if not line.strip():  # the parent gave up or died: do not send
        return 0
    config = json.loads(line)
    body = config["body"]
    result = run(
        config["host"],
        config["port"],
        config["method"],
        config["target"],
        body.encode() if body is not None else None,
        config["headers"],
        config["duration_s"],
        config["timeout_s"],
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
