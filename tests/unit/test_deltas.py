"""The delta stream (orchestrator/store/deltas.py) on a real redis-server: a writer coalesces many
fragments into few entries whose texts add up to exactly what it was given, flushes on time (an
injected clock, no sleeps), on size and on close; a Redis failure never reaches the model loop;
the stream is capped; it is written only while the session runs and expires with it."""

from __future__ import annotations

import logging

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from orchestrator.core.models import AgentDefinition, Capability, OrchestrateRequest
from orchestrator.core.step_runs import StepRun
from orchestrator.core.steps import StepResult
from orchestrator.settings import Settings
from orchestrator.store.deltas import DeltaStream, DeltaWriter
from orchestrator.store.keys import Keys
from tests.support.recording import ManualClock
from tests.support.redis_server import free_port
from tests.support.world import build_world

PREFIX = "dt"
RETENTION_S = 30
AGENT = AgentDefinition(
    id="w1", name="w1", type="t", max_load=2, capabilities=[Capability(name="work")]
)


@pytest.fixture
def world(real_redis):
    return build_world(
        real_redis, Settings(session_retention_s=RETENTION_S), agents=(AGENT,), prefix=PREFIX
    )


@pytest.fixture
def deltas(real_redis) -> DeltaStream:
    return DeltaStream(real_redis, Keys(PREFIX))


def running_session(world, *step_ids: str) -> tuple[str, dict[str, StepRun]]:
    steps = [{"id": s, "title": s, "requiredCapabilities": ["work"]} for s in step_ids]
    request = OrchestrateRequest.model_validate({"goal": "stream", "plan": {"steps": steps}})
    sid = world.engine.submit(request).session_id
    runs = {}
    for step_id in step_ids:
        run = world.lifecycle.begin(sid, step_id, AGENT.id)
        assert isinstance(run, StepRun)
        runs[step_id] = run
    return sid, runs


def entries(deltas: DeltaStream, sid: str) -> list[dict]:
    return deltas.read_after(sid, "0-0", block_ms=0, count=100_000)


def test_many_small_fragments_become_few_entries_that_add_up_to_them(world, deltas):
    sid, _ = running_session(world, "A")
    clock = ManualClock(0.0)
    writer = deltas.writer(sid, "A", AGENT.id, clock=clock)
    fragments = [f"tok{i} " for i in range(1000)]
    # When a model sends 1000 fragments 10 ms apart (10 s), then ends
    for fragment in fragments:
        clock.advance(0.01)
        writer.on_delta(fragment)
    writer.close()
    # Then there are about 4 entries a second, not 1000, and together they are the text
    found = entries(deltas, sid)
    assert 30 <= len(found) <= 10 / 0.25 + 2
    assert "".join(e["text"] for e in found) == "".join(fragments)
    assert [e["seq"] for e in found] == list(range(1, len(found) + 1))
    assert [e["done"] for e in found] == [False] * (len(found) - 1) + [True]
    assert {(e["stepId"], e["agentId"]) for e in found} == {("A", AGENT.id)}
    assert writer.seq == len(found) and not writer.streaming


def test_a_flush_waits_for_the_interval_since_the_last_one(world, deltas):
    sid, _ = running_session(world, "A")
    clock = ManualClock(100.0)
    writer = deltas.writer(sid, "A", AGENT.id, clock=clock, flush_interval_s=0.25)
    for at, fragment in ((0.1, "a"), (0.2, "b")):
        clock.now_s = 100.0 + at
        writer.on_delta(fragment)
    assert entries(deltas, sid) == []  # 0.2 s since the writer began: still buffered
    clock.now_s = 100.26
    writer.on_delta("c")
    assert [e["text"] for e in entries(deltas, sid)] == ["abc"]
    clock.now_s = 100.4  # 0.14 s since that flush
    writer.on_delta("d")
    assert len(entries(deltas, sid)) == 1
    clock.now_s = 100.51
    writer.on_delta("e")
    assert [e["text"] for e in entries(deltas, sid)] == ["abc", "de"]


def test_a_full_buffer_flushes_without_waiting_and_close_writes_the_rest(world, deltas):
    sid, _ = running_session(world, "A")
    writer = deltas.writer(sid, "A", AGENT.id, clock=lambda: 0.0)  # time stands still
    for _ in range(20):
        writer.on_delta("x" * 100)
    found = entries(deltas, sid)
    assert [len(e["text"]) for e in found] == [600, 600, 600]  # at >= 512 characters
    writer.on_delta("tail")
    writer.close()
    writer.close()  # once only
    writer.on_delta("after close")  # ignored
    found = entries(deltas, sid)
    assert [(e["text"], e["seq"], e["done"]) for e in found[3:]] == [("x" * 200 + "tail", 4, True)]
    assert "".join(e["text"] for e in found) == "x" * 2000 + "tail"


def test_close_alone_writes_the_end_marker_and_empty_fragments_are_ignored(world, deltas):
    sid, _ = running_session(world, "A")
    with deltas.writer(sid, "A", AGENT.id, clock=lambda: 0.0) as writer:
        writer.on_delta("")
        writer.flush()  # nothing buffered: nothing written
    assert [(e["text"], e["seq"], e["done"]) for e in entries(deltas, sid)] == [("", 1, True)]


def test_text_is_kept_exactly_unicode_and_markup_included(world, deltas):
    sid, _ = running_session(world, "A")
    fragments = ["<b>", "ünïcödé ", "\u2603", "\n\t", '"quoted"', "</b>", "emoji \U0001f600"]
    writer = deltas.writer(sid, "A", AGENT.id, clock=lambda: 0.0, flush_chars=3)
    for fragment in fragments:
        writer.on_delta(fragment)
    writer.close()
    assert "".join(e["text"] for e in entries(deltas, sid)) == "".join(fragments)


def test_a_redis_that_does_not_answer_never_raises_into_the_model_loop(caplog):
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    writer = DeltaStream(dead, Keys(PREFIX)).writer("s-1", "A", "w1", clock=lambda: 0.0)
    with caplog.at_level(logging.WARNING, logger="orchestrator.store.deltas"):
        writer.on_delta("x" * 600)  # due: a write, which fails
        writer.on_delta("more")
        writer.close()
    assert not writer.streaming and writer.seq == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "step A of session s-1 stopped" in warnings[0].getMessage()


def test_a_failure_in_the_middle_stops_streaming_for_that_step_only():
    written: list[dict[str, str]] = []

    def append(fields: dict[str, str]) -> str | None:
        if len(written) == 2:
            raise redis.ConnectionError("gone")
        written.append(fields)
        return f"{len(written)}-0"

    writer = DeltaWriter(append, "s-1", "A", "w1", clock=lambda: 0.0, flush_chars=1)
    for fragment in "abcdef":
        writer.on_delta(fragment)
    writer.close()
    assert [f["text"] for f in written] == ["a", "b"]
    assert not writer.streaming
    other = DeltaWriter(lambda fields: "1-0", "s-1", "B", "w1", clock=lambda: 0.0)
    other.on_delta("still streams")
    other.close()
    assert other.seq == 1


def test_the_stream_is_capped_near_its_max_len(world, deltas, real_redis):
    sid, _ = running_session(world, "A")
    writer = deltas.writer(sid, "A", AGENT.id, clock=lambda: 0.0, flush_chars=1)
    for i in range(2600):
        writer.on_delta(str(i % 10))
    writer.close()
    length = real_redis.xlen(Keys(PREFIX).deltas(sid))
    assert deltas.max_len == 2000
    assert 2000 <= length <= 2100, length  # MAXLEN ~ trims whole stream nodes (100 entries)
    assert entries(deltas, sid)[-1]["seq"] == 2601


def test_one_read_brings_log_entries_and_deltas(world, deltas):
    sid, _ = running_session(world, "A")
    writer = deltas.writer(sid, "A", AGENT.id, clock=lambda: 0.0, flush_chars=1)
    writer.on_delta("hi")
    logs, chunks = deltas.read_events(sid, "0-0", "0-0", block_ms=0)
    assert [e["message"].split(" with")[0] for e in logs] == ["Session created", "Step started"]
    assert all(e["id"].startswith("log-") for e in logs)
    assert [(c["text"], c["seq"]) for c in chunks] == [("hi", 1)]
    # after both: nothing, until a new chunk arrives
    log_after = logs[-1]["id"].removeprefix("log-")
    assert deltas.read_events(sid, log_after, chunks[-1]["id"], block_ms=0) == ([], [])
    writer.on_delta("!")
    assert [
        c["text"] for c in deltas.read_events(sid, log_after, chunks[-1]["id"], block_ms=1)[1]
    ] == ["!"]


def test_nothing_is_written_once_the_session_ended_and_the_stream_expires_with_it(
    world, deltas, real_redis
):
    keys = Keys(PREFIX)
    sid, runs = running_session(world, "A", "B")
    writer = deltas.writer(sid, "A", AGENT.id, clock=lambda: 0.0, flush_chars=1)
    writer.on_delta("streamed")
    assert real_redis.pttl(keys.deltas(sid)) == -1  # a running session's keys do not expire
    assert keys.deltas(sid) in keys.session_owned(sid)
    # When the session ends
    world.lifecycle.succeed(runs["A"], StepResult("a"))
    world.lifecycle.succeed(runs["B"], StepResult("b"))
    assert world.engine.snapshot(sid).status == "completed"
    # Then its delta stream expires with the rest of it
    assert 0 < real_redis.pttl(keys.deltas(sid)) <= RETENTION_S * 1000
    # and a late writer writes nothing, nor recreates the stream once it is gone
    late = deltas.writer(sid, "B", AGENT.id, clock=lambda: 0.0, flush_chars=1)
    late.on_delta("late")
    assert not late.streaming and late.seq == 0
    real_redis.delete(keys.deltas(sid), keys.session(sid))
    deltas.writer(sid, "B", AGENT.id, clock=lambda: 0.0, flush_chars=1).on_delta("later")
    assert real_redis.exists(keys.deltas(sid)) == 0
    assert [c["text"] for c in entries(deltas, sid)] == []
