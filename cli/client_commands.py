"""`meowstik submit`, `meowstik status`, `meowstik logs` and `meowstik costs`: the REST API from
a terminal.

``submit --follow`` shows live progress from the session's event stream (or, from an API
without one, by polling the session) and ends with a summary. Exit codes, for scripts:
0 completed, 1 failed, 2 cancelled, 3 API or connection error or bad input, 130 interrupted
(Ctrl-C stops following; the session itself keeps running).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from cli.api_client import DEFAULT_API_URL, FINAL_EVENT, ApiClient
from cli.api_errors import ClientError, EventsUnavailable
from cli.rendering import format_entry, render_costs, render_session
from orchestrator.core.statuses import SessionStatus
from orchestrator.settings import Settings
from orchestrator.store.logbook import LEVEL_RANK

EXIT_ERROR = 3
EXIT_INTERRUPTED = 130
EXIT_BY_STATUS: dict[str, int] = {
    SessionStatus.COMPLETED: 0,
    SessionStatus.FAILED: 1,
    SessionStatus.CANCELLED: 2,
}
BAR_WIDTH = 10
RUNNING_SHOWN = 3  # step ids named after "running:" before "+N more"
# events worth a line of their own above the progress bar
NOTICES = frozenset(
    {
        "step.failed",
        "step.retrying",
        "step.fallback",
        "step.waiting_for_input",
        "step.waiting_for_agent",
        "step.schedule_timeout",
        "session.cancelled",
    }
)
# events after which a step is no longer running
STEP_ENDS = NOTICES | {"step.completed", "step.waiting_for_capacity", "step.dead_lettered"}


class BadInput(Exception):
    """A command-line value the client cannot send (exit 3, like the API's own 4xx)."""


class Interrupted(Exception):
    """Ctrl-C while following ``session_id``."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(session_id)


def default_api_url() -> str:
    """MEOWSTIK_API_URL (the settings object), else the local API of `make up`."""
    return Settings().api_url or DEFAULT_API_URL


def default_api_token() -> str | None:
    """MEOWSTIK_API_TOKEN (the settings object), else None: send no Authorization header."""
    token = Settings().api_token
    return token.get_secret_value() if token is not None else None


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Register `submit`, `status`, `logs` and `costs` (and, from plan_commands, `plan` and
    `templates`; from ops_commands, `cancel`, `input`, `agents`, `experiments`, `queues` and
    `workers`)."""
    submit = commands.add_parser("submit", help="start a session for a goal")
    submit.add_argument("goal", help="what the session should achieve")
    submit.add_argument("--user", help="userId of the session")
    submit.add_argument("--context", help="initialContext, a JSON object")
    add_planning_arguments(submit)
    submit.add_argument("--follow", action="store_true", help="show progress until it ends")
    submit.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    submit.set_defaults(handler=partial(run, action=_submit))

    status = commands.add_parser("status", help="show a session and its steps")
    status.add_argument("session", help="session id")
    status.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    status.set_defaults(handler=partial(run, action=_status))

    logs = commands.add_parser("logs", help="show a session's log")
    logs.add_argument("session", help="session id")
    logs.add_argument("--follow", action="store_true", help="keep printing until it ends")
    logs.add_argument("--level", choices=list(LEVEL_RANK), help="minimum level")
    logs.add_argument("--limit", type=int, help="at most this many entries (without --follow)")
    logs.set_defaults(handler=partial(run, action=_logs))

    costs = commands.add_parser(
        "costs",
        help="show what a session spent: tokens, dollars and CPU by step, agent and model",
        description="What a session's model calls cost (exact dollars from the API's price "
        "table; 'unknown' for a model without a price) and its steps' CPU time: a row per "
        "step, the totals, by agent, by model, and the price table used.",
    )
    costs.add_argument("session", help="session id")
    costs.add_argument("--json", action="store_true", help="print the API's cost view as JSON")
    costs.set_defaults(handler=partial(run, action=_costs))

    from cli import ops_commands, plan_commands

    parsers = (submit, status, logs, costs, *plan_commands.add_parsers(commands))
    for parser in (*parsers, *ops_commands.add_parsers(commands)):
        add_api_url_argument(parser)


def add_api_url_argument(parser: argparse.ArgumentParser, default: Any = None) -> None:
    """--api-url and --api-token: where the API is and the bearer token it is sent.
    ``default=argparse.SUPPRESS`` on a nested subcommand keeps what its parent parsed."""
    parser.add_argument(
        "--api-url",
        default=default,
        help=f"the API's base URL (default: MEOWSTIK_API_URL or {DEFAULT_API_URL})",
    )
    parser.add_argument(
        "--api-token",
        default=default,
        help="bearer token sent as the Authorization header (default: MEOWSTIK_API_TOKEN; "
        "prefer the variable, a flag shows in the process list)",
    )


def add_planning_arguments(parser: argparse.ArgumentParser) -> None:
    """--plan, --template and --planner: who plans the goal (submit and plan)."""
    parser.add_argument("--plan", type=Path, help='a JSON file {"steps": [...]}: skip planning')
    parser.add_argument("--template", help="a workflow template by name (meowstik templates)")
    parser.add_argument(
        "--planner",
        choices=["auto", "rule", "template", "llm"],
        help="who plans the goal (default: the API's MEOWSTIK_PLANNER)",
    )


def run(args: argparse.Namespace, action: Callable[[ApiClient, argparse.Namespace], int]) -> int:
    """Run ``action(client, args)``, turning client failures into messages and exit codes."""
    try:
        token = getattr(args, "api_token", None) or default_api_token()
        with ApiClient(args.api_url or default_api_url(), token=token) as client:
            return action(client, args)
    except (BadInput, ClientError) as exc:
        print(f"meowstik {args.command}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ValidationError as exc:  # a MEOWSTIK_* variable the settings object refuses
        from cli.config_command import describe_invalid

        invalid = describe_invalid(exc)
        print(f"meowstik {args.command}: invalid MEOWSTIK_* settings:\n{invalid}", file=sys.stderr)
        return EXIT_ERROR
    except Interrupted as exc:
        cancel_url = client.url(f"/sessions/{exc.session_id}/cancel")
        print(
            f"\nstopped following; session {exc.session_id} keeps running. "
            f"To cancel it: meowstik cancel {exc.session_id} (or curl -X POST {cancel_url})",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:  # before there was a session to follow
        return EXIT_INTERRUPTED


def _submit(client: ApiClient, args: argparse.Namespace) -> int:
    snapshot = client.submit(request_body(args))
    session_id = snapshot["sessionId"]
    if not args.follow:
        hint = f"follow it: meowstik status {session_id}; meowstik logs {session_id} --follow"
        short = f"session {session_id}: {snapshot['status']}\n{hint}"
        print(json.dumps(snapshot, indent=2) if args.json else short)
        return 0
    if not args.json:
        print(f"session {session_id}: {args.goal}", flush=True)
    view = None if args.json else ProgressView(sys.stdout, sys.stdout.isatty())
    follow(client, session_id, view)
    final = client.session(session_id)
    print(json.dumps(final, indent=2) if args.json else "\n".join(render_session(final)))
    return exit_code(final["status"])


def _status(client: ApiClient, args: argparse.Namespace) -> int:
    snapshot = client.session(args.session)
    print(json.dumps(snapshot, indent=2) if args.json else "\n".join(render_session(snapshot)))
    return 0


def _costs(client: ApiClient, args: argparse.Namespace) -> int:
    view = client.cost(args.session)
    print(json.dumps(view, indent=2) if args.json else "\n".join(render_costs(view)))
    return 0


def _logs(client: ApiClient, args: argparse.Namespace) -> int:
    if args.follow and args.limit is not None:
        raise BadInput("--limit applies without --follow; --follow prints every entry")
    if args.limit is not None and args.limit < 1:
        raise BadInput(f"--limit must be at least 1, not {args.limit}")
    if args.follow:
        minimum = LEVEL_RANK[args.level or "debug"]
        try:
            for entry in client.live_logs(args.session):
                if LEVEL_RANK.get(entry["level"], minimum) >= minimum:
                    print(format_entry(entry), flush=True)
        except KeyboardInterrupt:
            raise Interrupted(args.session) from None
        return 0
    for entry in client.iter_logs(args.session, args.level, args.limit):
        print(format_entry(entry))
    return 0


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /orchestrate body from the command line.

    Raises:
        BadInput: --context is not a JSON object, or --plan is not a readable plan file.
    """
    body: dict[str, Any] = {"goal": args.goal}
    if args.user:
        body["userId"] = args.user
    if args.context is not None:
        body["initialContext"] = _json_object(args.context, "--context")
    if args.template:
        body["template"] = args.template
    if args.planner:
        body["planner"] = args.planner
    if args.plan is not None:
        try:
            text = args.plan.read_text(encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"cannot read --plan {args.plan}: {exc.strerror}") from exc
        plan = _json_object(text, f"--plan {args.plan}")
        if not isinstance(plan.get("steps"), list):
            raise BadInput(f'--plan {args.plan} must be an object {{"steps": [...]}}')
        body["plan"] = plan
    return body


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise BadInput(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def exit_code(status: str) -> int:
    """0 completed, 1 failed, 2 cancelled; a session not yet over is a client error (3)."""
    return EXIT_BY_STATUS.get(status, EXIT_ERROR)


@dataclass(frozen=True)
class Progress:
    """How far a session has come: counts of steps, its status, the steps running now."""

    completed: int
    failed: int
    total: int
    status: str
    running: tuple[str, ...] = ()

    @classmethod
    def of(cls, counts: dict[str, Any], running: Iterable[str] = ()) -> Progress:
        """From an event's ``progress`` or a session snapshot: both carry completedTasks,
        failedTasks, totalTasks and status."""
        return cls(
            counts.get("completedTasks", 0),
            counts.get("failedTasks", 0),
            counts.get("totalTasks", 0),
            counts.get("status", ""),
            tuple(running),
        )


def render_bar(progress: Progress, width: int = BAR_WIDTH) -> str:
    """``[#####-----] 3/5 steps  running: step-4``: done steps (completed or failed) fill it."""
    done = progress.completed + progress.failed
    filled = min(width, width * done // progress.total) if progress.total else 0
    text = f"[{'#' * filled}{'-' * (width - filled)}] {done}/{progress.total} steps"
    if progress.failed:
        text += f" ({progress.failed} failed)"
    if progress.running:
        shown = ", ".join(progress.running[:RUNNING_SHOWN])
        more = len(progress.running) - RUNNING_SHOWN
        text += f"  running: {shown}" + (f" +{more} more" if more > 0 else "")
    return text


class ProgressView:
    """Progress on ``out``: one line rewritten in place on a terminal, plain lines otherwise
    (logs and pipes get one line per change, no carriage returns). Notices print above it."""

    def __init__(self, out: TextIO, tty: bool) -> None:
        self.out = out
        self.tty = tty
        self._shown = ""  # the bar as last drawn
        self._width = 0  # characters of the bar on screen now (terminal only)

    def show(self, progress: Progress, notice: str | None = None) -> None:
        if notice:
            self._clear()
            self.out.write(notice + "\n")
        line = render_bar(progress)
        if line != self._shown:
            self._draw(line)
        self.out.flush()

    def close(self) -> None:
        """End the bar's line so what follows starts on its own."""
        if self.tty and self._width:
            self.out.write("\n")
            self.out.flush()
        self._width = 0

    def _draw(self, line: str) -> None:
        if self.tty:
            self.out.write("\r" + line + " " * max(0, self._width - len(line)))
            self._width = len(line)
        else:
            self.out.write(line + "\n")
        self._shown = line

    def _clear(self) -> None:
        if self.tty and self._width:
            self.out.write("\r" + " " * self._width + "\r")
            self._width = 0
            self._shown = ""


def follow(client: ApiClient, session_id: str, view: ProgressView | None) -> None:
    """Show the session's progress on ``view`` (None: quietly) until it ends.

    Raises:
        Interrupted: Ctrl-C; the session keeps running.
    """
    try:
        for progress, notice in watch(client, session_id):
            if view is not None:
                view.show(progress, notice)
    except KeyboardInterrupt:
        raise Interrupted(session_id) from None
    finally:
        if view is not None:
            view.close()


def watch(client: ApiClient, session_id: str) -> Iterator[tuple[Progress, str | None]]:
    """Progress updates, each with a notice line or None, until the session ends: from the
    event stream, or by polling the session every POLL_INTERVAL_S when the API has none."""
    try:
        yield from progress_from_events(client.follow_events(session_id))
    except EventsUnavailable:
        yield from progress_from_snapshots(client.poll_session(session_id))


def progress_from_events(events) -> Iterator[tuple[Progress, str | None]]:
    """Progress from live events: their ``progress`` counts, and which steps run now (a
    ``step.started`` until the step's next event)."""
    running: dict[str, None] = {}  # an ordered set: steps in the order they started
    for event in events:
        data = event.json()
        task = data.get("taskId")
        if task and event.event == "step.started":
            running[task] = None
        elif task and event.event in STEP_ENDS:
            running.pop(task, None)
        elif event.event == FINAL_EVENT:
            running.clear()
        notice = format_notice(data) if event.event in NOTICES else None
        yield Progress.of(data.get("progress") or {}, running), notice


def progress_from_snapshots(snapshots) -> Iterator[tuple[Progress, None]]:
    for snapshot in snapshots:
        steps = snapshot.get("steps", {})
        running = [step_id for step_id, state in steps.items() if state["status"] == "running"]
        yield Progress.of(snapshot, running), None


def format_notice(data: dict[str, Any]) -> str:
    """``B (broken-001): Step failed: this agent always fails``."""
    who = data.get("taskId") or "session"
    if data.get("agentId"):
        who += f" ({data['agentId']})"
    question = (data.get("data") or {}).get("question")
    detail = data.get("error") or question
    return f"{who}: {data.get('message', '')}" + (f": {detail}" if detail else "")
