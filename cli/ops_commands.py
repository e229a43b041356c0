"""Operating a running cluster from a terminal: `meowstik cancel`, `input`, `agents`, `queues`,
`workers` and `experiments`, all through the REST API (and its Flower-compatible endpoints).

    meowstik cancel SESSION                          cancel a session
    meowstik input SESSION                           list the steps waiting for input
    meowstik input SESSION STEP VALUE                answer one (VALUE is JSON text)
    meowstik input SESSION STEP --file PATH          ... the answer read from a file (- is stdin)
    meowstik agents                                  table of agents (success, p50/p95: 24h)
    meowstik agents set-status AGENT_ID STATUS       active | inactive | draining
    meowstik queues                                  queues, waiting messages, consumers
    meowstik workers                                 workers from their heartbeats
    meowstik experiments                             A/B experiments: status, variants
    meowstik experiments NAME                        one's report: variants and verdicts

Every command takes --api-url, --api-token and --json, and exits like the other client
commands: 0 done, 3 API or connection error or bad input (the API's message on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path
from typing import Any

from cli.api_client import ApiClient
from cli.client_commands import BadInput, add_api_url_argument, run
from cli.rendering import (
    format_rate,
    format_run_time,
    render_experiment_report,
    render_experiments,
    render_session,
    render_table,
)
from orchestrator.core.statuses import AGENT_SETTABLE, AgentStatus, StepStatus

SETTABLE_STATUSES = [s.value for s in AgentStatus if s in AGENT_SETTABLE]


def add_parsers(commands: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    """Register the commands; the caller adds --api-url and --api-token to those returned."""
    cancel = commands.add_parser(
        "cancel", help="cancel a session: nothing more starts, running steps are revoked"
    )
    cancel.add_argument("session", metavar="SESSION", help="session id")
    _add_json(cancel, "print the session's snapshot as JSON")
    cancel.set_defaults(handler=partial(run, action=_cancel))

    answer = commands.add_parser(
        "input",
        help="answer a step waiting for operator input (without STEP: list the waiting steps)",
        description="Without STEP, list the session's steps waiting for input with their "
        "question and schema. With STEP, send the answer: VALUE as JSON text (quote strings: "
        "'\"yes\"'), or --file PATH holding the JSON (- reads stdin).",
    )
    answer.add_argument("session", metavar="SESSION", help="session id")
    answer.add_argument("step", nargs="?", metavar="STEP", help="id of the step waiting for input")
    answer.add_argument(
        "value", nargs="?", metavar="VALUE", help="the answer as JSON, e.g. '{\"approve\": true}'"
    )
    answer.add_argument(
        "--file", type=Path, metavar="PATH", help="read the JSON answer from a file (- is stdin)"
    )
    _add_json(answer, "print the session's snapshot (or the waiting steps) as JSON")
    answer.set_defaults(handler=partial(run, action=_input))

    agents = commands.add_parser(
        "agents",
        help="list the agents; `agents set-status ID STATUS` activates, deactivates or drains one",
    )
    _add_json(agents, "print the API's listing as JSON")
    agents.set_defaults(handler=partial(run, action=_agents))
    actions = agents.add_subparsers(dest="agents_action", metavar="{set-status}")
    set_status = actions.add_parser(
        "set-status",
        help="set an agent's status",
        description="active takes work, inactive takes none, draining finishes its current "
        "work and takes no new. (offline and unhosted are derived from heartbeats and cannot "
        "be set.)",
    )
    set_status.add_argument("agent", metavar="AGENT_ID", help="agent id")
    set_status.add_argument("status", choices=SETTABLE_STATUSES, help="the new status")
    # given before or after `set-status`: the subcommand's own copies must not reset them
    _add_json(set_status, "print the updated agent as JSON", default=argparse.SUPPRESS)
    add_api_url_argument(set_status, default=argparse.SUPPRESS)
    set_status.set_defaults(handler=partial(run, action=_set_status))

    queues = commands.add_parser(
        "queues", help="list the queues: waiting messages and the online workers consuming them"
    )
    _add_json(queues, "print name, messages and consumers of each queue as JSON")
    queues.set_defaults(handler=partial(run, action=_queues))

    workers = commands.add_parser("workers", help="list the workers (from their heartbeats)")
    _add_json(workers, "print the API's /api/workers document as JSON")
    workers.set_defaults(handler=partial(run, action=_workers))
    experiments = commands.add_parser(
        "experiments",
        help="list the A/B experiments; with NAME, its report: variants and verdicts",
        description="Without NAME, every experiment: status, how sessions are assigned, its "
        "variants with their weights and what each sets. With NAME, its report: per variant "
        "the sessions, success rate, duration and cost with their intervals, then each "
        "variant against the first (the control) per metric: the difference, the p-value, "
        "the test, and the better one when the difference is significant.",
    )
    experiments.add_argument("name", nargs="?", metavar="NAME", help="an experiment's name")
    _add_json(experiments, "print the API's listing (or the report) as JSON")
    experiments.set_defaults(handler=partial(run, action=_experiments))
    return [cancel, answer, agents, queues, workers, experiments]


def _add_json(parser: argparse.ArgumentParser, help_text: str, default: Any = False) -> None:
    parser.add_argument("--json", action="store_true", default=default, help=help_text)


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2))


# --- cancel and input ------------------------------------------------------------------------


def _cancel(client: ApiClient, args: argparse.Namespace) -> int:
    snapshot = client.cancel(args.session)
    if args.json:
        _print_json(snapshot)
    else:
        print("\n".join(render_session(snapshot)))
    return 0


def _input(client: ApiClient, args: argparse.Namespace) -> int:
    if args.step is None:
        if args.file is not None:
            raise BadInput("--file is the answer for a STEP: meowstik input SESSION STEP --file F")
        return _list_waiting(client, args)
    value = answer_value(args.value, args.file)
    snapshot = client.provide_input(args.session, args.step, value)
    if args.json:
        _print_json(snapshot)
        return 0
    step = snapshot.get("steps", {}).get(args.step, {})
    print(
        f"answered {args.step}: step {step.get('status', '?')}, "
        f"session {snapshot['sessionId']} {snapshot['status']}"
    )
    return 0


def answer_value(text: str | None, file: Path | None) -> Any:
    """The answer from VALUE or --file (exactly one), parsed as JSON.

    Raises:
        BadInput: neither or both given, an unreadable file, text that is not JSON.
    """
    if (text is None) == (file is None):
        raise BadInput("give the answer as VALUE (JSON text) or with --file PATH, not both")
    what = "VALUE"
    if file is not None:
        what = f"--file {file}"
        try:
            text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"cannot read {what}: {exc.strerror}") from exc
    try:
        return json.loads(text or "")
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"{what} is not valid JSON ({exc}); quote a string answer, e.g. '\"yes\"'"
        ) from exc


def _list_waiting(client: ApiClient, args: argparse.Namespace) -> int:
    snapshot = client.session(args.session)
    waiting = {
        step_id: state.get("inputRequest") or {}
        for step_id, state in snapshot.get("steps", {}).items()
        if state.get("status") == StepStatus.WAITING_FOR_INPUT
    }
    if args.json:
        _print_json({"sessionId": args.session, "status": snapshot["status"], "waiting": waiting})
        return 0
    print("\n".join(render_waiting(snapshot, waiting)))
    return 0


def render_waiting(snapshot: dict[str, Any], waiting: dict[str, dict[str, Any]]) -> list[str]:
    """The steps waiting for input: question, schema, deadline and what happens then."""
    sid = snapshot["sessionId"]
    if not waiting:
        return [f"session {sid}: {snapshot['status']}; no step is waiting for input"]
    lines = [f"session {sid}: {snapshot['status']}; {len(waiting)} waiting for input"]
    for step_id, request in waiting.items():
        lines += ["", f"{step_id}: {request.get('question', '?')}"]
        if request.get("schema"):
            lines.append(f"  schema: {json.dumps(request['schema'])}")
        if request.get("deadline"):
            then = "the step fails"
            if request.get("onTimeout") == "default":
                then = f"the default {json.dumps(request.get('default'))} is used"
            lines.append(f"  deadline: {request['deadline']}, then {then}")
        lines.append(f"  answer: meowstik input {sid} {step_id} '<JSON>'")
    return lines


# --- agents, queues, workers -----------------------------------------------------------------


METRICS_WINDOW = "24h"  # the window of the agents table's SUCCESS, P50 and P95


def _agents(client: ApiClient, args: argparse.Namespace) -> int:
    listing = client.agents(metrics=METRICS_WINDOW)
    if args.json:
        _print_json(listing)
    elif not listing["agents"]:
        print("no agents are registered")
    else:
        print("\n".join(render_agents(listing["agents"])))
    return 0


def render_agents(agents: list[dict[str, Any]]) -> list[str]:
    """A row per agent; SUCCESS, P50 and P95 (run time) from its ``metrics`` (the last 24
    hours), "-" when none of its runs ended in it (or the API sent no metrics)."""
    rows = [["ID", "TYPE", "STATUS", "LOAD", "CIRCUIT", "SUCCESS", "P50", "P95", "CAPABILITIES"]]
    for agent in agents:
        circuit = agent.get("circuit") or {}
        state = circuit.get("state", "-")
        if circuit.get("openUntil") and state == "open":
            state += f" until {circuit['openUntil']}"
        metrics = agent.get("metrics") or {}
        run = metrics.get("run") or {}
        rows.append(
            [
                agent["id"],
                agent.get("type", "?"),
                agent.get("status", "?"),
                f"{agent.get('currentLoad', 0)}/{agent.get('maxLoad', '?')}",
                state,
                format_rate(metrics.get("successRate")),
                format_run_time(run.get("p50S")),
                format_run_time(run.get("p95S")),
                ",".join(c["name"] for c in agent.get("capabilities", [])),
            ]
        )
    return render_table(rows, right=frozenset({5, 6, 7}))


def _set_status(client: ApiClient, args: argparse.Namespace) -> int:
    agent = client.update_agent(args.agent, {"status": args.status})
    if args.json:
        _print_json(agent)
    else:
        print(f"agent {agent['id']}: {agent['status']} (load {agent.get('currentLoad', 0)})")
    return 0


def _queues(client: ApiClient, args: argparse.Namespace) -> int:
    """Waiting messages from /api/queues/length; consumers, as the dashboard's queues page
    counts them, are the online workers whose active_queues name the queue (/api/workers)."""
    lengths = client.queue_lengths()["active_queues"]
    workers = client.workers()
    consumers: dict[str, list[str]] = {}
    for name, worker in sorted(workers.items()):
        if worker.get("alive"):
            for queue in worker.get("active_queues", []):
                consumers.setdefault(queue["name"], []).append(name)
    queues = [
        {"name": q["name"], "messages": q["messages"], "consumers": consumers.get(q["name"], [])}
        for q in lengths
    ]
    if args.json:
        _print_json({"queues": queues})
    elif not queues:
        print("no queues: no agent or worker names one yet")
    else:
        rows = [["QUEUE", "WAITING", "CONSUMERS"]]
        rows += [
            [q["name"], str(q["messages"]), ", ".join(q["consumers"]) or "none"] for q in queues
        ]
        print("\n".join(render_table(rows)))
    return 0


def _workers(client: ApiClient, args: argparse.Namespace) -> int:
    workers = client.workers()
    if args.json:
        _print_json(workers)
    elif not workers:
        print("no worker has sent a heartbeat yet")
    else:
        print("\n".join(render_workers(workers)))
    return 0


def render_workers(workers: dict[str, dict[str, Any]]) -> list[str]:
    rows = [["WORKER", "STATUS", "AGENTS", "QUEUES", "PID", "PROCESSES", "LAST HEARTBEAT"]]
    for name, worker in sorted(workers.items()):
        stats = worker.get("stats") or {}
        processes = (stats.get("pool") or {}).get("max-concurrency")
        rows.append(
            [
                name,
                worker.get("status") or ("online" if worker.get("alive") else "offline"),
                ",".join(worker.get("agents", [])) or "-",
                ",".join(q["name"] for q in worker.get("active_queues", [])) or "-",
                str(stats.get("pid") or "-"),
                str(processes or "-"),
                worker.get("lastHeartbeat") or "-",
            ]
        )
    return render_table(rows)


# --- experiments ------------------------------------------------------------------------------


def _experiments(client: ApiClient, args: argparse.Namespace) -> int:
    if args.name is not None:
        report = client.experiment_report(args.name)
        if args.json:
            _print_json(report)
        else:
            print("\n".join(render_experiment_report(report)))
        return 0
    listing = client.experiments()
    if args.json:
        _print_json(listing)
    elif not listing["experiments"]:
        print("no experiments yet (an admin token starts one: POST /api/orchestrator/experiments)")
    else:
        print("\n".join(render_experiments(listing["experiments"])))
    return 0
