"""The supervisor's process handling, with real (tiny) shell processes, and `up`'s pure helpers."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cli.commands import worker_command
from cli.processes import (
    RESTART_BACKOFF_MAX_S,
    ManagedProcess,
    ensure_port_free,
    has_exited,
    spawn_process,
    stop_process_groups,
)
from cli.supervisor import Supervisor
from cli.supervisor_errors import ChildExitedError, NotReadyError, PortInUseError
from cli.up import AlreadyRunningError, DataDirLock, redact_url
from orchestrator.core.fleet import CODER
from orchestrator.settings import Settings

DEADLINE_S = 10.0


def pid_alive(pid: int) -> bool:
    """Whether pid names a live process (a zombie counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def read_pid(path: Path) -> int:
    wait_for(lambda: path.exists() and path.read_text().strip().isdigit(), f"a pid in {path}")
    return int(path.read_text())


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_restart_backoff_doubles_from_one_second_up_to_thirty_and_resets_after_a_long_run() -> None:
    child = ManagedProcess("worker", ["true"])

    delays = [child.schedule_restart(now=0.0) for _ in range(7)]
    child.started_at = 100.0
    after_long_run = child.schedule_restart(now=100.0 + RESTART_BACKOFF_MAX_S)

    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert after_long_run == 1.0


def test_stopping_kills_a_leader_that_ignores_sigterm_and_everything_in_its_group(
    tmp_path: Path,
) -> None:
    grandchild_pid_file = tmp_path / "grandchild.pid"
    script = f"trap '' TERM; sleep 1000 & echo $! > {grandchild_pid_file}; wait"
    process = spawn_process(["sh", "-c", script])
    grandchild = read_pid(grandchild_pid_file)

    stop_process_groups([process], grace_s=0.2)

    assert process.returncode is not None
    wait_for(lambda: not pid_alive(grandchild), "the grandchild to die")


def test_stopping_removes_processes_a_gracefully_exiting_leader_left_behind(tmp_path: Path) -> None:
    straggler_pid_file = tmp_path / "straggler.pid"
    script = (
        f"(trap '' TERM; sleep 1000) & echo $! > {straggler_pid_file}; trap 'exit 0' TERM; wait"
    )
    process = spawn_process(["sh", "-c", script])
    straggler = read_pid(straggler_pid_file)

    stop_process_groups([process], grace_s=5.0)

    assert process.returncode == 0
    wait_for(lambda: not pid_alive(straggler), "the straggler to die")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_a_child_dies_when_its_supervisor_is_killed_with_sigkill(tmp_path: Path) -> None:
    child_pid_file = tmp_path / "child.pid"
    program = (
        "import sys, time; from cli.processes import spawn_process; "
        "p = spawn_process(['sleep', '1000']); "
        f"open({str(child_pid_file)!r}, 'w').write(str(p.pid)); "
        "time.sleep(1000)"
    )
    supervisor = subprocess.Popen([sys.executable, "-c", program], cwd=Path(__file__).parents[2])
    child = read_pid(child_pid_file)
    assert pid_alive(child)

    try:
        supervisor.kill()
        supervisor.wait()

        wait_for(lambda: not pid_alive(child), "the orphaned child to die")
    finally:
        if pid_alive(child):
            os.kill(child, signal.SIGKILL)


def test_a_child_that_exits_while_starting_is_reported_with_its_last_output(tmp_path: Path) -> None:
    supervisor = Supervisor(out=io.StringIO())
    log = tmp_path / "api.log"
    supervisor.start(
        ManagedProcess("api", ["sh", "-c", "echo 'cannot import api'; exit 3"], None, log)
    )

    with pytest.raises(ChildExitedError) as raised:
        supervisor.wait_until(lambda: False, what="the API", timeout_s=DEADLINE_S)

    assert raised.value.exit_code == 3
    assert "cannot import api" in str(raised.value)
    assert str(log) in str(raised.value)


def test_a_condition_that_never_holds_times_out_naming_what_was_awaited() -> None:
    supervisor = Supervisor(out=io.StringIO())

    with pytest.raises(NotReadyError, match="the agents"):
        supervisor.wait_until(lambda: False, what="the agents", timeout_s=0.1)


def test_a_crashed_child_is_restarted_after_its_backoff(tmp_path: Path) -> None:
    clock = FakeClock()
    out = io.StringIO()
    supervisor = Supervisor(out=out, clock=clock)
    child = ManagedProcess("worker coder-001", ["sh", "-c", "exit 7"], None, tmp_path / "w.log")
    supervisor.start(child)
    first = child.process
    assert first is not None
    wait_for(lambda: has_exited(first), "the child to exit")

    supervisor.restart_crashed_children()
    scheduled_at = child.restart_at
    clock.now = 1.0
    supervisor.restart_crashed_children()

    assert first.returncode == 7
    assert scheduled_at == 1.0
    assert child.process is not first and child.restarts == 1
    assert "worker coder-001 exited unexpectedly with code 7; restarting it in 1s" in out.getvalue()
    assert "restarted worker coder-001" in out.getvalue()
    supervisor.shutdown()


def test_a_retired_child_is_stopped_once_and_forgotten_not_restarted(tmp_path: Path) -> None:
    out = io.StringIO()
    supervisor = Supervisor(out=out)
    child = ManagedProcess("worker coder-001.r2", ["sleep", "60"], None, tmp_path / "r.log")
    supervisor.start(child)
    process = child.process
    assert process is not None

    supervisor.retire(child)
    wait_for(lambda: has_exited(process), "the retired child to exit on SIGTERM")
    supervisor.restart_crashed_children()

    assert supervisor.children == []
    assert process.returncode == -signal.SIGTERM
    assert "worker coder-001.r2 stopped" in out.getvalue()
    assert "restarting" not in out.getvalue()


@pytest.mark.parametrize("with_redis_stage", [False, True])
def test_shutdown_calls_its_hook_once_the_workers_stopped_and_before_redis(
    tmp_path: Path, with_redis_stage: bool
) -> None:
    supervisor = Supervisor(out=io.StringIO())
    worker = ManagedProcess("worker", ["sleep", "60"], None, tmp_path / "w.log")
    redis_like = ManagedProcess("redis", ["sleep", "60"], None, tmp_path / "r.log", stop_stage=1)
    supervisor.start(worker)
    if with_redis_stage:
        supervisor.start(redis_like)
    seen: list[tuple[bool, bool | None]] = []

    def hook() -> None:
        redis_running = redis_like.running and not has_exited(redis_like.process)  # type: ignore[arg-type]
        seen.append((worker.running, redis_running if with_redis_stage else None))

    supervisor.shutdown(after_first_stage=hook)

    assert seen == [(False, True if with_redis_stage else None)]
    assert not redis_like.running


def test_a_taken_port_is_reported_with_the_setting_to_change() -> None:
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        with pytest.raises(
            PortInUseError, match=f"127.0.0.1:{port} is already in use.*MEOWSTIK_API_PORT"
        ):
            ensure_port_free("127.0.0.1", port, setting="MEOWSTIK_API_PORT")


def test_a_second_lock_on_the_same_data_dir_fails_naming_the_holders_pid(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(AlreadyRunningError) as raised:
            DataDirLock(tmp_path).acquire()
    finally:
        first.release()

    assert raised.value.holder_pid == os.getpid()
    assert f"already running on data dir {tmp_path} (pid {os.getpid()})" in str(raised.value)
    again = DataDirLock(tmp_path)
    again.acquire()  # released: free again
    again.release()


def test_worker_commands_pass_concurrency_through_and_name_the_node_by_agent_type() -> None:
    assert worker_command(CODER, concurrency=3, program=["meowstik"]) == [
        "meowstik", "worker", "--agents", "coder-001", "--name", "coder@%h", "--concurrency", "3",
    ]  # fmt: skip


def test_printed_redis_urls_hide_the_password() -> None:
    assert redact_url("redis://:s3cret@redis.example:6379/0") == "redis://:***@redis.example:6379/0"
    assert redact_url("redis://127.0.0.1:6399/0") == "redis://127.0.0.1:6399/0"


def test_the_banner_names_the_model_without_its_secrets():
    from cli.up import _model_line

    line = _model_line(
        Settings(llm_base_url="https://u:pw@llm.example/v1?token=t0k", llm_api_key="sk-123")
    )
    assert line.startswith("gpt-4o-mini at https://u:***@llm.example/v1?token=***")
    assert "pw" not in line and "t0k" not in line and "sk-123" not in line
    assert _model_line(Settings(llm_base_url=None)).startswith("none: the built-in agents work")
