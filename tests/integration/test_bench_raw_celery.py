"""Smoke test of the raw-Celery baselines: every shape runs on a real worker at tiny sizes and
returns a measured figure after running exactly the tasks it should (as many messages received
by the worker) and storing exactly the results it should (as many new result keys in Redis)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from benchmarks.raw_celery import RawCelery, dag_layers, random_dag

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def raw(redis_server, tmp_path_factory) -> Iterator[RawCelery]:
    with RawCelery(redis_server.url, tmp_path_factory.mktemp("raw-celery")) as running:
        yield running


@pytest.fixture
def ran(raw: RawCelery, redis_server) -> Iterator[Callable[[], tuple[int, int]]]:
    """(tasks executed, results stored) by the run under test: executions are the messages the
    worker received; a stored result is one new key in Redis (only for awaited results and
    chord members, the others ignore theirs)."""
    client = redis.Redis.from_url(redis_server.url)

    def stored() -> int:
        return sum(1 for _ in client.scan_iter("celery-task-meta-*", count=1000))

    before = stored()
    raw.take_received()
    yield lambda: (raw.take_received()["count"], stored() - before)
    client.close()


def test_flat_runs_every_task(raw: RawCelery, ran) -> None:
    assert raw.flat(20) > 0
    assert ran() == (20, 20)


def test_round_trips_are_timed_one_by_one(raw: RawCelery, ran) -> None:
    times = raw.round_trips_ms(5)
    assert len(times) == 5 and all(t > 0 for t in times)
    assert ran() == (5, 5)


def test_wide_runs_root_fan_out_and_callback(raw: RawCelery, ran) -> None:
    assert raw.wide(8) > 0
    assert ran() == (1 + 8 + 1, 8 + 1)  # the root ignores its result


def test_chain_runs_every_hop(raw: RawCelery, ran) -> None:
    assert raw.chain(10) > 0
    assert ran() == (10, 1)  # hops pass results in messages


def test_layered_runs_every_layer_and_the_fan_in(raw: RawCelery, ran) -> None:
    # five layers: Celery's own chain of five groups would run some tasks several times
    assert raw.layered(5, 4) > 0
    assert ran() == (5 * 4 + 1, 5 * 4 + 1)


def test_dag_runs_every_step(raw: RawCelery, ran) -> None:
    steps = random_dag(30, seed=3)  # layers of one between groups, eleven layers deep
    sizes = [len(layer) for layer in dag_layers(steps)]
    assert 1 in sizes[1:-1] and max(sizes) > 1
    assert raw.dag(steps) > 0
    fan_in = 1 if sizes[-1] > 1 else 0
    in_groups = sum(size for size in sizes if size > 1)
    assert ran() == (len(steps) + fan_in, in_groups + 1)


def test_dag_layers_by_longest_path() -> None:
    steps = [
        {"id": "a", "dependsOn": []},
        {"id": "b", "dependsOn": ["a"]},
        {"id": "c", "dependsOn": ["a", "b"]},
        {"id": "d", "dependsOn": ["a"]},
    ]
    assert dag_layers(steps) == [["a"], ["b", "d"], ["c"]]
    with pytest.raises(ValueError):
        dag_layers([{"id": "x", "dependsOn": ["y"]}, {"id": "y", "dependsOn": ["x"]}])


def test_commands_per_task_counts_redis_work(raw: RawCelery, ran) -> None:
    per_task = raw.commands_per_task(20)
    assert ran() == (20, 20)
    # publish, receive, ack and store a result take several commands each; idle polling is not
    # enough to reach this
    assert 5 < per_task < 100


def test_worker_rss_of_main_and_each_pool_child(raw: RawCelery) -> None:
    rss = raw.worker_rss_bytes()
    assert rss["main"] > 10 * 2**20
    assert len(rss["children"]) == raw.concurrency
    assert all(child > 10 * 2**20 for child in rss["children"])


def test_message_bytes_grow_with_the_canvas_they_carry(raw: RawCelery) -> None:
    single = raw.message_bytes("single")
    chained = raw.message_bytes("chain 10")
    assert 0 < single < chained
    assert raw.message_bytes("wide 1-5-1") > single
    assert raw.message_bytes("layered 2x3") > single
    assert raw.message_bytes("flat 5") == pytest.approx(single, rel=0.2)
