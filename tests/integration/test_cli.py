"""`meowstik submit --follow`, `status` and `logs` as a user runs them, against a real cluster."""

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest
import redis

from tests.support.cluster import REPO_ROOT, wait_for
from tests.support.plans import step

pytestmark = pytest.mark.integration

MEOWSTIK = [sys.executable, "-m", "cli.main"]
CLI_TIMEOUT_S = 60


def cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "MEOWSTIK_API_URL"}


def meowstik(cluster, *argv: str) -> subprocess.CompletedProcess:
    """Run the CLI in a process of its own, pointed at the cluster's API, with stdout a pipe."""
    return subprocess.run(
        [*MEOWSTIK, *argv, "--api-url", cluster.api_url],
        cwd=REPO_ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )


def plan_file(tmp_path, capability: str, **parameters) -> str:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"steps": [step("only", capability, **parameters)]}))
    return str(plan)


def submit_one_step(cluster, tmp_path, capability: str) -> subprocess.CompletedProcess:
    plan = plan_file(tmp_path, capability)
    return meowstik(cluster, "submit", f"run {capability}", "--plan", plan, "--follow")


def session_id(output: str) -> str:
    """The id from the first line the CLI prints, ``session <id>: <goal>``."""
    return output.splitlines()[0].removeprefix("session ").split(":")[0]


def test_submit_follow_shows_progress_and_exits_0_when_the_session_completes(cluster, tmp_path):
    # Given a plan whose one step an echo agent runs
    # When it is submitted with --follow
    run = submit_one_step(cluster, tmp_path, "echo_work")
    # Then progress is shown, the summary says completed, and the exit code is 0
    assert run.returncode == 0, run.stdout + run.stderr
    assert "[##########] 1/1 steps" in run.stdout
    assert f"session {session_id(run.stdout)}: completed in " in run.stdout
    assert "only  completed  echo-001" in run.stdout


def test_submit_follow_exits_1_and_shows_the_error_when_the_session_fails(cluster, tmp_path):
    # Given a plan whose one step an always-failing agent runs
    # When it is submitted with --follow
    run = submit_one_step(cluster, tmp_path, "broken_work")
    # Then the summary says failed with the agent's error, and the exit code is 1
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1/1 steps (1 failed)" in run.stdout
    assert f"session {session_id(run.stdout)}: failed in " in run.stdout
    assert "this agent always fails" in run.stdout


def test_status_and_logs_describe_a_finished_session(cluster, tmp_path):
    # Given a session that completed
    sid = session_id(submit_one_step(cluster, tmp_path, "echo_work").stdout)
    # When its status and its log are asked for
    status = meowstik(cluster, "status", sid)
    logs = meowstik(cluster, "logs", sid)
    followed = meowstik(cluster, "logs", sid, "--follow", "--level", "info")
    # Then the status shows the step's row, and both logs show its life through the end
    assert status.returncode == 0, status.stderr
    assert "STEP  STATUS     AGENT     ATTEMPTS  DURATION" in status.stdout
    assert logs.returncode == 0 and followed.returncode == 0, logs.stderr + followed.stderr
    for output in (logs.stdout, followed.stdout):
        assert "[only echo-001] Step completed" in output
        assert output.rstrip().splitlines()[-1].endswith("Session finished")


def test_an_unknown_session_exits_3_with_the_apis_message(cluster):
    run = meowstik(cluster, "status", "no-such-session")
    assert run.returncode == 3
    assert "no session with id 'no-such-session'" in run.stderr


def test_ctrl_c_stops_following_with_130_and_the_session_runs_on(cluster, tmp_path):
    # Given `submit --follow` showing a step that waits at a gate
    gate = uuid.uuid4().hex
    output = tmp_path / "out.txt"
    with output.open("w") as out:
        follower = subprocess.Popen(
            [*MEOWSTIK, "submit", "gated", "--plan", plan_file(tmp_path, "gated_work", gate=gate)]
            + ["--follow", "--api-url", cluster.api_url],
            cwd=REPO_ROOT,
            env=cli_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        wait_for(lambda: "running: only" in output.read_text(), 30, what="the running step")
        # When the user presses Ctrl-C
        follower.send_signal(signal.SIGINT)
        assert follower.wait(CLI_TIMEOUT_S) == 130
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(CLI_TIMEOUT_S)
        redis.Redis.from_url(cluster.redis_url).lpush(f"test:gate:{gate}", "open")
    # Then the CLI says how to cancel, and the session was not cancelled: it completes
    text = output.read_text()
    sid = session_id(text)
    assert f"curl -X POST {cluster.api_url}/api/orchestrator/sessions/{sid}/cancel" in text
    assert cluster.wait_session(sid)["status"] == "completed"


def test_plan_previews_a_template_with_its_critical_path_and_runs_nothing(cluster):
    result = meowstik(cluster, "plan", "Build a REST API for todos", "--planner", "auto")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "plan by template rest_api: 8 steps, about 2m 35s with unlimited workers"
    path = "research -> user-endpoints -> error-handling -> implement -> tests -> review"
    assert lines[1] == f"critical path: {path}"
    rows = {line.split()[0]: line for line in lines[3:] if line.strip()}
    assert "  user-endpoints" in result.stdout  # subtasks indented under their parent
    assert rows["design"].split()[-1] != "critical" and rows["research"].endswith("critical")


def test_templates_lists_the_shipped_templates_with_their_parameters(cluster):
    result = meowstik(cluster, "templates")
    assert result.returncode == 0, result.stderr
    names = [line.split(":")[0] for line in result.stdout.splitlines()]
    assert {"blog_post", "code_review", "research_report", "rest_api"} <= set(names)
    assert "rest_api: Build a REST API (resource=users" in result.stdout


def test_submit_with_a_template_follows_it_to_the_end_and_shows_the_tree(cluster):
    result = meowstik(
        cluster,
        "submit",
        "Write a blog post about owls",
        "--template",
        "blog_post",
        "--context",
        '{"wordCount": 600}',
        "--follow",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4/4 steps completed" in result.stdout


def test_an_unknown_template_is_a_clear_error_with_exit_3(cluster):
    result = meowstik(cluster, "plan", "x", "--template", "nope")
    assert result.returncode == 3
    assert "no usable template named 'nope'" in result.stderr
