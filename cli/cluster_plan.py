"""What `meowstik up` will run: ``ClusterPlan``, derived from the settings and the flags.

It builds the command, environment and log file of every child (the API, one worker per hosted
agent, the remote-agents worker, Flower, autoscaled replicas) and the URLs `up` probes; it does
no I/O, so tests compare its commands with docker-compose.yml.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cli.commands import (
    api_command,
    flower_command,
    remote_worker_command,
    worker_command,
)
from cli.processes import ManagedProcess
from orchestrator.core.access import raw_tokens
from orchestrator.core.models import AgentDefinition
from orchestrator.settings import Settings
from workers.agents.base import replica_id


@dataclass(frozen=True)
class ClusterPlan:
    """What `up` will run, derived from settings and flags (no I/O)."""

    settings: Settings
    data_dir: Path
    agents: list[AgentDefinition]
    concurrency: int | None
    startup_timeout_s: float
    flower_port: int | None = None

    @property
    def embedded(self) -> bool:
        return not self.settings.redis_url

    @property
    def probe_headers(self) -> dict[str, str]:
        """How `up` itself calls its API: MEOWSTIK_API_TOKEN, else the first configured token."""
        s = self.settings
        token = s.api_token.get_secret_value() if s.api_token else None
        if token is None:
            configured = raw_tokens(
                s.api_tokens.get_secret_value() if s.api_tokens else None, s.api_tokens_file
            )
            token = configured[0][2] if configured else None
        return {"Authorization": f"Bearer {token}"} if token else {}

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def api_url(self) -> str:
        host = self.settings.api_host
        probe_host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(
            host, f"[{host}]" if ":" in host else host
        )
        return f"http://{probe_host}:{self.settings.api_port}"

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["MEOWSTIK_REDIS_URL"] = self.settings.effective_redis_url
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def app_children(self) -> list[ManagedProcess]:
        """The API, one worker per agent and one for remote agents; they stop before Redis."""
        env = self.child_env()
        s = self.settings
        api = ManagedProcess(
            "api",
            api_command(s.api_host, s.api_port, s.api_processes, s.api_threads),
            env,
            self.log_dir / "api.log",
        )
        workers = [
            ManagedProcess(
                f"worker {agent.id}",
                worker_command(agent, concurrency=self.concurrency),
                env,
                self.log_dir / f"worker-{agent.id}.log",
            )
            for agent in self.agents
        ]
        remote = ManagedProcess(
            "worker remote", remote_worker_command(), env, self.log_dir / "worker-remote.log"
        )
        extra = []
        if self.flower_port is not None:
            # Flower 2 refuses an open API unless told; it listens on loopback only
            flower_env = {**env, "FLOWER_UNAUTHENTICATED_API": "true"}
            command = flower_command("127.0.0.1", self.flower_port)
            extra.append(ManagedProcess("flower", command, flower_env, self.log_dir / "flower.log"))
        return [api, *workers, remote, *extra]

    def replica_child(self, agent: AgentDefinition, number: int) -> ManagedProcess:
        """Replica ``number`` of a hosted agent's worker (`--autoscale`)."""
        return ManagedProcess(
            f"worker {replica_id(agent.id, number)}",
            worker_command(agent, concurrency=self.concurrency, replica=number),
            self.child_env(),
            self.log_dir / f"worker-{replica_id(agent.id, number)}.log",
        )
