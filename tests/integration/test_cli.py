"""`meowstik submit --follow`, `status` and `logs` as a user runs them, against a real cluster."""

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest
import redis
import requests

from cli.rendering import format_rate, format_run_time
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
            # as from a terminal: a runner started in the background (`cmd &` in a script, nohup)
            # ignores SIGINT, and an ignored signal stays ignored in children across exec
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
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


# --- operating the cluster: agents, queues, workers, cancel, input ----------------------------


def test_agents_lists_them_and_set_status_drains_an_agent_and_activates_it_again(cluster):
    agent_id = "secondary-001"  # only the fallback tests route to it
    try:
        # When the agents are listed
        listed = meowstik(cluster, "agents")
        # Then each registered agent has a row: id, type, status, load, circuit, success rate
        # and p50/p95 run time over the last day (as the API counts them), capabilities
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert lines[0].split() == [
            "ID", "TYPE", "STATUS", "LOAD", "CIRCUIT", "SUCCESS", "P50", "P95", "CAPABILITIES"
        ]  # fmt: skip
        rows = {line.split()[0]: line.split() for line in lines[1:]}
        assert set(rows) == set(cluster.agents())
        echo = rows["echo-001"]
        assert echo[1:3] == ["tester", "active"] and echo[3].endswith("/4")
        day = requests.get(
            f"{cluster.api_url}/api/orchestrator/agents/echo-001/metrics?window=24h", timeout=10
        ).json()
        assert echo[4:] == [
            "closed",
            format_rate(day.get("successRate")),
            format_run_time(day["run"].get("p50S")),
            format_run_time(day["run"].get("p95S")),
            "echo_work",
        ]
        # When one is set to draining
        drained = meowstik(cluster, "agents", "set-status", agent_id, "draining")
        # Then the API has it draining, and the listing says so
        assert drained.returncode == 0, drained.stderr
        assert drained.stdout.startswith(f"agent {agent_id}: draining")
        assert cluster.agents()[agent_id]["status"] == "draining"
        as_json = json.loads(meowstik(cluster, "agents", "--json").stdout)
        assert {a["id"]: a["status"] for a in as_json["agents"]}[agent_id] == "draining"
        # When it is set back to active, the API has it active
        activated = meowstik(cluster, "agents", "set-status", agent_id, "active", "--json")
        assert activated.returncode == 0, activated.stderr
        assert json.loads(activated.stdout)["status"] == "active"
        assert cluster.agents()[agent_id]["status"] == "active"
    finally:
        requests.patch(
            f"{cluster.api_url}/api/orchestrator/agents/{agent_id}",
            json={"status": "active"},
            timeout=10,
        )
    # An unknown agent is the API's 404, exit 3
    unknown = meowstik(cluster, "agents", "set-status", "no-such-agent", "active")
    assert unknown.returncode == 3 and "no agent with id 'no-such-agent'" in unknown.stderr


def test_queues_and_workers_show_what_the_api_reports(cluster):
    workers = requests.get(f"{cluster.api_url}/api/workers", timeout=10).json()
    lengths = requests.get(f"{cluster.api_url}/api/queues/length", timeout=10).json()
    # When the queues are listed
    queues = meowstik(cluster, "queues")
    as_json = meowstik(cluster, "queues", "--json")
    # Then every queue the API counts has a row, consumed by the online workers listening on it
    assert queues.returncode == 0 and as_json.returncode == 0, queues.stderr + as_json.stderr
    assert queues.stdout.splitlines()[0].split() == ["QUEUE", "WAITING", "CONSUMERS"]
    listed = {q["name"]: q for q in json.loads(as_json.stdout)["queues"]}
    assert set(listed) == {q["name"] for q in lengths["active_queues"]}
    echo_queue = cluster.agents()["echo-001"]["queue"]
    hosts = sorted(
        n for n, w in workers.items() if echo_queue in {q["name"] for q in w["active_queues"]}
    )
    assert hosts and listed[echo_queue]["consumers"] == hosts
    assert any(line.split()[0] == echo_queue for line in queues.stdout.splitlines()[1:])
    # When the workers are listed, each has a row, online, with its agents
    shown = meowstik(cluster, "workers")
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[0]: line.split() for line in shown.stdout.splitlines()[1:]}
    assert set(rows) == set(workers) and len(rows) == 2
    assert all(row[1] == "online" for row in rows.values())
    assert any("echo-001" in row[2].split(",") for row in rows.values())
    assert json.loads(meowstik(cluster, "workers", "--json").stdout).keys() == workers.keys()


def test_cancel_stops_a_running_session(cluster):
    # Given a session whose step waits at a gate, running
    gate = uuid.uuid4().hex
    plan = {"steps": [step("only", "gated_work", gate=gate), step("after", "echo_work", "only")]}
    sid = cluster.submit({"goal": "cancel me", "plan": plan})["sessionId"]
    try:
        wait_for(
            lambda: cluster.session(sid)["steps"]["only"]["status"] == "running",
            30,
            what="the gated step running",
        )
        # When it is cancelled from the CLI
        cancelled = meowstik(cluster, "cancel", sid)
        # Then the CLI shows it cancelled, the API agrees, and the next step never ran
        assert cancelled.returncode == 0, cancelled.stderr
        assert cancelled.stdout.startswith(f"session {sid}: cancelled")
        final = cluster.session(sid)
        assert final["status"] == "cancelled"
        assert final["steps"]["after"]["status"] == "cancelled"
        # and cancelling a finished session again is fine, one that never was is exit 3
        assert meowstik(cluster, "cancel", sid, "--json").returncode == 0
        unknown = meowstik(cluster, "cancel", "no-such-session")
        assert unknown.returncode == 3 and "no session with id 'no-such-session'" in unknown.stderr
    finally:
        redis.Redis.from_url(cluster.redis_url).lpush(f"test:gate:{gate}", "open")


def test_input_lists_the_question_refuses_a_bad_answer_and_the_answer_completes_it(
    cluster, tmp_path
):
    # Given a step on asker-001 waiting for an approval
    schema = {"type": "object", "properties": {"approve": {"type": "boolean"}}}
    schema["required"] = ["approve"]
    plan = {"steps": [step("A", "ask_work", question="Ship it?", schema=schema)]}
    sid = cluster.submit({"goal": "ask", "plan": plan})["sessionId"]
    cluster.wait_session(sid, statuses=("waiting_for_input",), timeout_s=30)
    # When the waiting steps are listed, the question and its schema are shown
    listed = meowstik(cluster, "input", sid)
    assert listed.returncode == 0, listed.stderr
    assert "A: Ship it?" in listed.stdout.splitlines()
    assert f"  schema: {json.dumps(schema)}" in listed.stdout.splitlines()
    # When an answer breaks the schema, the API's 422 message is shown with exit 3
    refused = meowstik(cluster, "input", sid, "A", '{"approve": "yes"}')
    assert refused.returncode == 3
    assert "API error 422 invalid_input: the answer for step 'A' does not match" in refused.stderr
    assert cluster.session(sid)["steps"]["A"]["status"] == "waiting_for_input"
    # When a valid answer is sent from a file, the step runs again with it and the session ends
    answer = tmp_path / "answer.json"
    answer.write_text('{"approve": true}')
    accepted = meowstik(cluster, "input", sid, "A", "--file", str(answer))
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.startswith("answered A: step ")
    done = cluster.wait_session(sid, timeout_s=30)
    assert done["status"] == "completed", done["errors"]
    assert done["results"][f"{sid}.A"]["answer"] == {"approve": True}
