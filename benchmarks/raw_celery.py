"""Raw-Celery baselines: the same shapes as `make bench`, run by a bare Celery worker.

RawCelery starts `celery -A benchmarks.raw_tasks:app worker` (prefork, the product worker's
settings, see benchmarks/raw_tasks.py) on a given Redis and runs one shape per call; run.py
repeats calls. Wall time runs from just before the first apply_async to the moment the caller
has the final result, and every shape checks that result, so a figure is never one of work that
did not happen.

How a caller learns that work finished is part of what a Celery user pays, so it is measured:
results the caller waits for (and those a chord joins) go to the Redis result backend, and the
caller waits through Celery's pub/sub result consumer (a SUBSCRIBE per awaited task at publish
time, event-driven, no polling interval). A task whose result only its successor needs (a chain
hop, the root of a fan-out, a layer of one) ignores its result: Celery passes it along in the
next message anyway.
"""

from __future__ import annotations

import gc
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

import redis
from celery import chain, chord, group
from celery.canvas import Signature
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult, ResultSet

from benchmarks.raw_tasks import BROKER_ENV, NOOP_TASK, QUEUE, SIZES_COMMAND, create_app, noop_value

REPO_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 300.0
RESULT_INTERVAL_S = 0.005
STOP_GRACE_S = 15.0


class RawCelery:
    """A bare Celery worker process on ``redis_url`` and the shapes to time against it."""

    def __init__(self, redis_url: str, log_dir: Path, concurrency: int = 2) -> None:
        self.redis_url = redis_url
        self.log_path = Path(log_dir) / "raw_celery_worker.log"
        self.concurrency = concurrency
        self.hostname = f"raw-bench-{uuid.uuid4().hex[:8]}@bench"
        self.app = create_app(redis_url)
        self.noop = self.app.tasks[NOOP_TASK]
        self.client = redis.Redis.from_url(redis_url)
        self.process: subprocess.Popen[bytes] | None = None

    # -- worker process ---------------------------------------------------------------------

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "celery", "-A", "benchmarks.raw_tasks:app", "worker",
            "--pool", "prefork",
            "--concurrency", str(self.concurrency),
            "--queues", QUEUE,
            "--hostname", self.hostname,
            "--loglevel", "INFO",
            "--without-mingle",
            "--without-gossip",
        ]  # fmt: skip

    def __enter__(self) -> RawCelery:
        env = dict(os.environ)
        env[BROKER_ENV] = self.redis_url
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_answers()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_answers(self) -> None:
        """Wait for one ping task's result: a single message, so nothing is left queued to run
        inside the first measurement."""
        ping = self.noop.apply_async((0,))
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            self._check_alive()
            try:
                assert ping.get(timeout=0.5, interval=RESULT_INTERVAL_S) == 1
                return
            except CeleryTimeoutError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"raw Celery worker did not answer a ping in {START_TIMEOUT_S}s; "
                        f"log:\n{self._log_tail()}"
                    ) from None

    def _check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise AssertionError(f"raw Celery worker exited ({code}); log:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        """SIGTERM the worker's process group (a warm shutdown, nothing is running), then
        SIGKILL whatever of the group is left."""
        process, self.process = self.process, None
        try:
            if process is not None:
                try:
                    if process.poll() is None:
                        os.killpg(process.pid, signal.SIGTERM)
                        process.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    pass
                finally:
                    try:
                        os.killpg(process.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    process.wait(5)
        finally:
            # results form reference cycles; freed later, when Redis may be gone, their __del__
            # fails to unsubscribe
            gc.collect()
            self.app.close()
            self.client.close()

    # -- shapes -------------------------------------------------------------------------------

    def flat(self, n: int) -> float:
        """n independent no-ops (argument i, result i + 1): wall seconds until every result is
        known. All n results are awaited, not only the last published one: with two processes
        and prefetch, tasks finish out of order, so the last task says nothing about the rest."""
        self._check_alive()
        start = time.perf_counter()
        results = [self.noop.apply_async((i,)) for i in range(n)]
        values = ResultSet(results, app=self.app).join_native(
            timeout=RUN_TIMEOUT_S, interval=RESULT_INTERVAL_S
        )
        wall = time.perf_counter() - start
        if sorted(values) != list(range(1, n + 1)):
            raise AssertionError(f"flat({n}): wrong results {sorted(values)[:10]}...")
        return wall

    def round_trips_ms(self, n: int) -> list[float]:
        """n single tasks one after another, each apply_async -> get(), in ms."""
        self._check_alive()
        times = []
        for i in range(n):
            start = time.perf_counter()
            value = self.noop.apply_async((i,)).get(
                timeout=RUN_TIMEOUT_S, interval=RESULT_INTERVAL_S
            )
            times.append((time.perf_counter() - start) * 1000)
            if value != i + 1:
                raise AssertionError(f"round trip {i}: got {value!r}")
        return times

    def wide(self, width: int) -> float:
        """root -> chord(width no-ops, one callback); the callback counts the width results."""
        canvas = chain(
            self._hop(),
            chord(group(self.noop.s() for _ in range(width)), self.noop.s()),
        )
        return self._run(canvas, width, f"wide({width})")

    def chain(self, length: int) -> float:
        """A chain of length no-ops, each adding one to its parent's result: the last returns
        length."""
        canvas = chain(*(self._hop() for _ in range(length - 1)), self.noop.s())
        return self._run(canvas, length, f"chain({length})")

    def layered(self, layers: int, width: int) -> float:
        """layers groups of width no-ops, each a chord header whose body is the next layer (what
        Celery makes of group | group: every layer waits for all of the previous one), and one
        fan-in body that counts the last layer's results, each of which counted the layer
        before."""
        return self._run_layers([width] * layers, f"layered({layers}x{width})")

    def dag(self, steps: list[dict]) -> float:
        """A plan DAG ({"id", "dependsOn"}) the way a Celery user runs one: canvases cannot
        express a DAG, so steps are layered by depth (longest path from a root) and the layers
        chained, a group per layer (a single signature for a layer of one); a last layer of
        more than one step gets a fan-in body so there is one result to wait for. This runs
        more waits than the DAG has (a step waits for its whole previous layer)."""
        sizes = [len(layer) for layer in dag_layers(steps)]
        return self._run_layers(sizes, f"dag({len(steps)} steps)")

    def _run_layers(self, sizes: list[int], what: str) -> float:
        """Layers of these sizes one after another (a layer of one is a single signature), with
        a fan-in body after a last layer of more than one.

        Built as the nested chords chain(group, group, ...) upgrades to, written out: Celery
        5.x runs tasks more than once when four or more groups are chained (celery/celery
        #8662, #9020; here layered 4x10 ran 131 tasks instead of 41), while the explicit
        nesting runs each task once. Same messages, same chord joins."""
        tail: Signature | None = self.noop.s() if sizes[-1] > 1 else None
        singles: list[Signature] = []  # consecutive layers of one, in order, before `tail`
        for size in reversed(sizes):
            if size == 1:
                last = tail is None and not singles  # the final task: its result is awaited
                singles.insert(0, self.noop.s() if last else self._hop())
                continue
            if singles:
                tail = chain(*singles, tail) if tail is not None else chain(*singles)
                singles = []
            tail = chord(group(self.noop.s() for _ in range(size)), tail)
        if singles:
            tail = chain(*singles, tail) if tail is not None else chain(*singles)
        assert tail is not None
        return self._run(tail, _expected(sizes), what)

    def _hop(self) -> Signature:
        """A no-op whose result only its successor needs: Celery passes it along in the next
        message, so it is not stored (a chord header's member must store, the final task
        too)."""
        return self.noop.s().set(ignore_result=True)

    def _run(self, canvas: Signature, expected: int, what: str) -> float:
        """Publish a canvas and wait for its final task's result. Waited on by id alone: the
        AsyncResult a chain returns links its parents, and its get() re-reads every parent's
        state (a GET each) whenever it wakes, to re-raise a parent's error early; on a chain of
        200 or a chord of 1000 that is the client competing with the worker for Redis and the
        two cores, not Celery's orchestration cost."""
        self._check_alive()
        start = time.perf_counter()
        final = AsyncResult(canvas.apply_async().id, app=self.app)
        value = final.get(timeout=RUN_TIMEOUT_S, interval=RESULT_INTERVAL_S)
        wall = time.perf_counter() - start
        if value != expected:
            raise AssertionError(f"{what}: final result {value!r}, expected {expected!r}")
        return wall

    # -- costs --------------------------------------------------------------------------------

    def commands_per_task(self, n: int) -> float:
        """Redis commands (INFO commandstats, every client: caller, worker, result backend) per
        task of flat(n); the second INFO call is not in its own figures, the first one is."""
        before = self._commands()
        self.flat(n)
        return (self._commands() - before - 1) / n

    def _commands(self) -> int:
        return sum(int(stat["calls"]) for stat in self.client.info("commandstats").values())

    def worker_rss_bytes(self) -> dict:
        """VmRSS of the worker's main process and of each pool child, from /proc."""
        self._check_alive()
        assert self.process is not None
        main = self.process.pid
        return {"main": rss_bytes(main), "children": [rss_bytes(p) for p in child_pids(main)]}

    def message_bytes(self, shape: str) -> float:
        """Mean body size in bytes (the JSON [args, kwargs, embed] Celery serialises; a chain's
        or chord's remaining canvas travels in it) of the task messages the worker receives for
        one run of a shape: "single", "flat N", "chain N", "wide N" (or "wide 1-N-1"),
        "layered LxW". The worker counts them on receipt; a remote-control command reads the
        count, so the measurement adds nothing to Redis during the run."""
        kind = shape.split()[0].lower() if shape.strip() else ""
        numbers = [int(number) for number in re.findall(r"\d+", shape)]
        width = numbers[1] if kind == "wide" and len(numbers) == 3 else (numbers or [0])[0]
        runs = {  # the shape, and how many task messages it sends
            "single": (lambda: self.round_trips_ms(1), 1),
            "flat": (lambda: self.flat(width), width),
            "chain": (lambda: self.chain(width), width),
            "wide": (lambda: self.wide(width), width + 2),
            "layered": (
                lambda: self.layered(numbers[0], numbers[1]),
                numbers[0] * numbers[1] + (numbers[1] > 1) if len(numbers) == 2 else 0,
            ),
        }
        if kind not in runs:
            raise ValueError(f"unknown shape {shape!r}; one of {sorted(runs)}")
        run, messages = runs[kind]
        self.take_received()
        run()
        sizes = self.take_received()
        if sizes["count"] != messages:
            raise AssertionError(
                f"{shape}: worker received {sizes['count']} messages, expected {messages}"
            )
        return sizes["bodyBytes"] / sizes["count"]

    def take_received(self) -> dict[str, int]:
        """{"count", "bodyBytes"} of the task messages the worker received since the last call:
        a count of task executions that costs Redis nothing during a run (a redelivered
        message would count twice, as it runs twice)."""
        replies = self.app.control.broadcast(
            SIZES_COMMAND, destination=[self.hostname], reply=True, timeout=5.0
        )
        for reply in replies:
            if self.hostname in reply:
                return reply[self.hostname]
        raise AssertionError(f"no message-size reply from {self.hostname}: {replies!r}")


def _expected(sizes: list[int]) -> int:
    """The final result of chained layers of these sizes (a layer of one is a single task) and
    a fan-in body after a last layer of more than one."""
    value: int | list | None = None
    for size in sizes:
        value = noop_value(value) if size == 1 else [noop_value(value)] * size
    return noop_value(value) if isinstance(value, list) else value


def dag_layers(steps: list[dict]) -> list[list[str]]:
    """Step ids grouped by depth: 0 for a step without dependencies, else one more than its
    deepest dependency."""
    depends = {step["id"]: list(step.get("dependsOn", [])) for step in steps}
    depth: dict[str, int] = {}
    for step_id in depends:
        stack = [step_id]
        while stack:
            current = stack[-1]
            if current in depth:
                stack.pop()
                continue
            pending = [d for d in depends[current] if d not in depth]
            for dep in pending:
                if dep not in depends:
                    raise ValueError(f"{current} depends on unknown step {dep}")
                if dep in stack:
                    raise ValueError(f"dependency cycle through {dep}")
            if pending:
                stack.extend(pending)
            else:
                depth[current] = 1 + max((depth[d] for d in depends[current]), default=-1)
                stack.pop()
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for step_id, level in depth.items():
        layers[level].append(step_id)
    return layers


def random_dag(size: int, seed: int = 7) -> list[dict]:
    """size plan steps, each after the first depending on 1-3 random earlier steps."""
    rng = random.Random(seed)
    steps = []
    for i in range(size):
        deps = rng.sample(range(i), min(i, rng.randint(1, 3))) if i else []
        steps.append({"id": f"d{i}", "dependsOn": [f"d{d}" for d in sorted(deps)]})
    return steps


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def child_pids(pid: int) -> list[int]:
    """Direct children of pid, from the parent field of every /proc/<pid>/stat."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process exited while we looked
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return sorted(children)


def main() -> int:
    from cli.embedded_redis import EmbeddedRedis
    from tests.support.redis_server import free_port

    dag_steps = random_dag(500, seed=7)
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedRedis(Path(tmp), free_port()) as server,
        RawCelery(server.url, Path(tmp)) as raw,
    ):
        flat = raw.flat(5000)
        trips = sorted(raw.round_trips_ms(200))
        wide = raw.wide(1000)
        chained = raw.chain(200)
        layered = raw.layered(5, 50)
        dag = raw.dag(dag_steps)
        commands = raw.commands_per_task(1000)
        rss = raw.worker_rss_bytes()
        sizes = {s: raw.message_bytes(s) for s in ("single", "chain 100", "wide 200")}
    print(f"raw Celery, worker prefork concurrency {raw.concurrency}, one run per shape")
    print(f"flat 5000            {flat:8.3f} s  {5000 / flat:6.0f} tasks/s")
    print(
        f"round trip x200      p50 {statistics.median(trips):.2f} ms  "
        f"p95 {trips[int(0.95 * len(trips))]:.2f} ms"
    )
    print(f"wide 1-1000-1        {wide:8.3f} s")
    print(f"chain 200            {chained:8.3f} s  {chained / 200 * 1000:6.2f} ms per hop")
    print(f"layered 5x50 + 1     {layered:8.3f} s")
    depth = len(dag_layers(dag_steps))
    print(f"dag 500 ({depth} layers)  {dag:8.3f} s")
    print(f"commands per task    {commands:8.1f}  (flat 1000)")
    print(
        f"worker RSS           main {rss['main'] / 2**20:.1f} MiB, children "
        + ", ".join(f"{c / 2**20:.1f}" for c in rss["children"])
        + " MiB"
    )
    print("message body bytes   " + ", ".join(f"{s}: {b:.0f}" for s, b in sizes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
