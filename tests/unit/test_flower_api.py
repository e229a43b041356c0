"""The Flower-compatible endpoints through Flask's test client, on fakeredis: tasks are steps,
workers come from their heartbeat records, revoke fails one step."""

import time

import pytest

from api import create_app
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from orchestrator.store.keys import Keys
from orchestrator.store.workers import WorkerRegistry
from tests.support.recording import RecordingDispatcher
from tests.support.world import build_world

AGENT = "researcher-001"


def plan(*steps):
    return {
        "goal": "flower",
        "plan": {
            "steps": [
                {"id": s, "title": s, "requiredCapabilities": ["web_research"], "dependsOn": d}
                for s, d in steps
            ]
        },
    }


@pytest.fixture
def env(fake_redis):
    settings = Settings()
    world = build_world(fake_redis, settings, prefix=settings.key_prefix)
    dispatcher = RecordingDispatcher()
    app = create_app(settings, redis_client=fake_redis, dispatcher=dispatcher)
    client = app.test_client()
    workers = WorkerRegistry(fake_redis, Keys(settings.key_prefix))
    return client, world, dispatcher, workers


def submit(client, body) -> str:
    response = client.post("/api/orchestrator/orchestrate", json=body)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["sessionId"]


def test_task_types_name_the_one_step_task(env):
    client, *_ = env
    assert client.get("/api/task/types").get_json() == {"task-types": ["meowstik.run_step"]}


def test_tasks_are_the_steps_with_celery_states_newest_session_first(env):
    client, world, *_ = env
    old = submit(client, plan(("a", []), ("b", ["a"])))
    run = world.lifecycle.begin(old, "a", AGENT)
    world.clock.advance(1.5)
    world.lifecycle.succeed(run, StepResult({"found": 3}))
    new = submit(client, plan(("x", [])))
    tasks = client.get("/api/tasks").get_json()
    assert list(tasks) == [f"{new}.x", f"{old}.a", f"{old}.b"]
    done = tasks[f"{old}.a"]
    assert done["state"] == "SUCCESS" and done["name"] == "meowstik.run_step"
    assert done["result"] == '{"found": 3}' and done["runtime"] == 1.5
    assert done["worker"] == "w1" and done["routing_key"] == "agent.researcher-001"
    assert done["root_id"] == old and done["stepId"] == "a"
    assert tasks[f"{old}.b"]["state"] == "RECEIVED"  # released by a's completion
    assert tasks[f"{new}.x"]["state"] == "RECEIVED"


def test_tasks_filter_page_and_sort_like_flower(env):
    client, world, *_ = env
    sid = submit(client, plan(("a", []), ("b", []), ("c", [])))
    world.lifecycle.succeed(world.lifecycle.begin(sid, "b", AGENT), StepResult(1))
    only = client.get("/api/tasks?state=SUCCESS").get_json()
    assert list(only) == [f"{sid}.b"]
    assert list(client.get("/api/tasks?limit=1&offset=1").get_json()) == [f"{sid}.b"]
    by_state = list(client.get("/api/tasks?sort_by=-state").get_json().values())
    assert [t["state"] for t in by_state] == ["SUCCESS", "RECEIVED", "RECEIVED"]
    assert client.get("/api/tasks?taskname=tasks.add").get_json() == {}
    assert client.get("/api/tasks?workername=nobody").get_json() == {}


@pytest.mark.parametrize("query", ["limit=0", "limit=x", "sort_by=uuid", "offset=-1", "bogus=1"])
def test_bad_task_queries_are_422_naming_the_parameter(env, query):
    client, *_ = env
    response = client.get(f"/api/tasks?{query}")
    assert response.status_code == 422
    assert response.get_json()["error"]["details"]["errors"][0]["location"].startswith("query.")


def test_task_info_is_one_task_and_unknown_ids_are_404(env):
    client, *_ = env
    sid = submit(client, plan(("a", [])))
    info = client.get(f"/api/task/info/{sid}.a").get_json()
    assert info["uuid"] == f"{sid}.a" and info["state"] == "RECEIVED"
    for bad in (f"{sid}.nope", "orch-1-ffff.a", "no-dot-here"):
        response = client.get(f"/api/task/info/{bad}")
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "task_not_found"


def test_revoke_fails_the_step_and_the_failure_policy_applies(env):
    client, world, dispatcher, _ = env
    sid = submit(client, plan(("a", []), ("b", ["a"])))
    response = client.post(f"/api/task/revoke/{sid}.a")
    assert response.get_json() == {"message": f"Revoked '{sid}.a'"}
    snapshot = client.get(f"/api/orchestrator/sessions/{sid}").get_json()
    assert snapshot["status"] == "failed"
    assert {k: v["status"] for k, v in snapshot["steps"].items()} == {
        "a": "failed",
        "b": "cancelled",
    }
    assert snapshot["errors"][0]["errorType"] == "Revoked"
    assert dispatcher.revoked == []  # it was not running: nothing to terminate
    again = client.post(f"/api/task/revoke/{sid}.a")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "step_finished"
    for unknown in (f"{sid}.zz", "orch-1-ffff.a"):
        missing = client.post(f"/api/task/revoke/{unknown}")
        assert (
            missing.status_code == 404 and missing.get_json()["error"]["code"] == "task_not_found"
        )


def test_revoke_with_terminate_stops_a_running_step(env):
    client, world, dispatcher, _ = env
    sid = submit(client, plan(("a", [])))
    run = world.lifecycle.begin(sid, "a", AGENT)
    assert client.post(f"/api/task/revoke/{sid}.a?terminate=true").status_code == 200
    assert dispatcher.revoked == [f"{sid}.a"]
    assert world.lifecycle.succeed(run, StepResult("late")).code == "stale"  # refused
    bad = client.post(f"/api/task/revoke/{sid}.a?terminate=maybe")
    assert bad.status_code == 422


def test_workers_come_from_heartbeats_in_flowers_shape(env):
    client, world, _, workers = env
    now = world.now_ms()
    info = {"hostname": "w1", "pid": 42, "queues": ["agent.researcher-001", "cap.web_research"]}
    workers.heartbeat(
        "w1", {**info, "concurrency": 2, "agents": [AGENT]}, now_ms=now, alive_ms=10**12
    )
    listed = client.get("/api/workers").get_json()
    w1 = listed["w1"]
    assert [q["name"] for q in w1["active_queues"]] == ["agent.researcher-001", "cap.web_research"]
    assert w1["stats"]["pid"] == 42 and w1["stats"]["pool"]["max-concurrency"] == 2
    assert w1["alive"] is True and w1["agents"] == [AGENT]
    assert client.get("/api/workers?status=true").get_json() == {"w1": True}
    assert client.get("/api/workers?workername=w1&refresh=1").get_json().keys() == {"w1"}
    missing = client.get("/api/workers?workername=w9")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "worker_not_found"


def test_a_worker_that_stopped_is_offline_then_forgotten(env, fake_redis):
    client, world, _, workers = env
    workers.heartbeat("w2", {"queues": []}, now_ms=0, alive_ms=1000)
    assert client.get("/api/workers?status=1").get_json() == {}  # long gone: forgotten
    now = int(time.time() * 1000)  # the API's clock
    workers.heartbeat("w3", {"queues": []}, now_ms=now, alive_ms=10**12)
    workers.mark_offline("w3", now_ms=now)
    assert client.get("/api/workers?status=1").get_json() == {"w3": False}


def test_queue_lengths_count_waiting_messages_per_queue(env, fake_redis):
    client, *_ = env
    fake_redis.rpush(Keys(Settings().key_prefix).broker("cap.web_research"), "m1", "m2")
    fake_redis.rpush("cap.web_research", "another deployment's, or no prefix's")
    queues = client.get("/api/queues/length").get_json()["active_queues"]
    by_name = {q["name"]: q["messages"] for q in queues}
    assert by_name["cap.web_research"] == 2 and by_name["agent.researcher-001"] == 0


def test_healthcheck_says_ok_like_flower(env):
    client, *_ = env
    response = client.get("/healthcheck")
    assert response.status_code == 200 and response.get_data(as_text=True) == "OK"
