"""Bringing a planned cluster up: the embedded Redis (or a check that the configured one
answers), a check that Redis's maxmemory-policy keeps keys, then the API, the workers and
Flower, waiting on readiness probes until the API is healthy and every hosted agent is active.
The probes are plain HTTP GETs with a short timeout.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import requests

from cli.cluster_plan import ClusterPlan
from cli.embedded_redis import EmbeddedRedis, redis_answers
from cli.processes import ManagedProcess, ensure_port_free
from cli.supervisor import Supervisor
from cli.supervisor_errors import SupervisorError
from orchestrator.core.errors import EvictionPolicyError
from orchestrator.store.connection import redact_url, redis_client
from orchestrator.store.redis_health import EvictionGuard

REDIS_START_TIMEOUT_S = 15.0
REDIS_CHECK_TIMEOUT_S = 2.0
HTTP_PROBE_TIMEOUT_S = 2.0
AGENTS_PATH = "/api/orchestrator/agents"
HEALTH_PATH = "/healthz"


def start_cluster(supervisor: Supervisor, plan: ClusterPlan) -> bool:
    """Start Redis, then the API and workers, and wait until they serve; False if interrupted."""
    s = plan.settings
    ensure_port_free(s.api_host, s.api_port, setting="MEOWSTIK_API_PORT")
    if not _start_redis(supervisor, plan):
        return False
    _refuse_evicting_redis(plan)
    for child in plan.app_children():
        supervisor.start(child)
    api_url = plan.api_url
    if not supervisor.wait_until(
        lambda: http_ok(api_url + HEALTH_PATH),
        what=f"the API at {api_url}{HEALTH_PATH} (log: {plan.log_dir / 'api.log'})",
        timeout_s=plan.startup_timeout_s,
    ):
        return False
    if plan.flower_port is not None and not supervisor.wait_until(
        lambda: http_ok(f"http://127.0.0.1:{plan.flower_port}/healthcheck"),
        what=f"Flower on port {plan.flower_port} (log: {plan.log_dir / 'flower.log'})",
        timeout_s=plan.startup_timeout_s,
    ):
        return False
    agent_ids = [agent.id for agent in plan.agents]
    return supervisor.wait_until(
        lambda: _agents_active(api_url, agent_ids, plan.probe_headers),
        what=f"agents {', '.join(agent_ids)} to be active at {api_url}{AGENTS_PATH} "
        f"(logs: {plan.log_dir})",
        timeout_s=plan.startup_timeout_s,
    )


def _start_redis(supervisor: Supervisor, plan: ClusterPlan) -> bool:
    """Start the embedded Redis, or check that the configured one answers; False if interrupted."""
    s = plan.settings
    if plan.embedded:
        embedded = EmbeddedRedis(plan.data_dir, s.embedded_redis_port)
        embedded.prepare()
        supervisor.start(
            ManagedProcess("redis", embedded.command(), None, embedded.log_path, stop_stage=1)
        )
        ping = embedded.ping
        what = f"the embedded Redis at {embedded.url} (log: {embedded.log_path})"
    else:
        ping = functools.partial(redis_answers, s.effective_redis_url, s.redis_sentinel_master)
        what = f"Redis at {redact_url(s.effective_redis_url)} (MEOWSTIK_REDIS_URL)"
    return supervisor.wait_until(ping, what=what, timeout_s=REDIS_START_TIMEOUT_S)


def _refuse_evicting_redis(plan: ClusterPlan) -> None:
    """Stop before starting the API and workers (each would refuse it, and be restarted) when
    Redis's maxmemory-policy may evict keys, unless MEOWSTIK_REDIS_ALLOW_EVICTION is set.

    Raises:
        SupervisorError: the policy evicts keys; the message says how to fix it.
    """
    s = plan.settings
    client = redis_client(
        s.effective_redis_url,
        sentinel_master=s.redis_sentinel_master,
        socket_timeout=REDIS_CHECK_TIMEOUT_S,
        socket_connect_timeout=REDIS_CHECK_TIMEOUT_S,
    )
    try:
        EvictionGuard(client, s.redis_allow_eviction, "meowstik up").check_at_start()
    except EvictionPolicyError as exc:
        raise SupervisorError(exc.message) from exc
    finally:
        client.close()


def http_ok(url: str) -> bool:
    """Whether GET ``url`` answers 200 within HTTP_PROBE_TIMEOUT_S; no answer is False."""
    try:
        return requests.get(url, timeout=HTTP_PROBE_TIMEOUT_S).status_code == 200
    except requests.RequestException:
        return False


def _agents_active(api_url: str, agent_ids: Sequence[str], headers: dict[str, str]) -> bool:
    """Whether the API lists every hosted agent with status "active"."""
    try:
        response = requests.get(
            api_url + AGENTS_PATH, headers=headers, timeout=HTTP_PROBE_TIMEOUT_S
        )
        listed = response.json().get("agents", []) if response.status_code == 200 else []
    except (requests.RequestException, ValueError, AttributeError):
        return False
    active = {
        agent.get("id")
        for agent in listed
        if isinstance(agent, dict) and agent.get("status") == "active"
    }
    return set(agent_ids) <= active
