"""`make bench` end to end at tiny sizes (`--quick`): every figure the performance issue asks
for is measured and written, and the scale and retention checks hold."""

import json

import pytest

from benchmarks import run

pytestmark = pytest.mark.integration


def test_quick_bench_reports_every_figure(tmp_path, capsys):
    output = tmp_path / "bench.json"
    assert run.main(["--quick", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert set(report["targets"]) == set(run.TARGETS)
    assert [r["shape"].split()[0] for r in report["shapes"]] == [
        "flat",
        "wide",
        "chain",
        "layered",
        "mixed",
    ]
    for shape in report["shapes"]:
        assert shape["rawS"]["median"] > 0 and shape["productS"]["median"] > 0
        assert shape["redisCommandsPerStep"] > 0
        by_name = shape["redisCommandsPerStepByName"]  # what the per-step figure is made of
        assert sum(by_name.values()) == pytest.approx(shape["redisCommandsPerStep"], abs=0.5)
        assert by_name["evalsha"] >= 2  # at least a claim and a completion per step
    assert report["scale"]["completed"] == report["scale"]["sessions"] == run.QUICK.scale_sessions
    assert report["api"]["status"]["requestsPerS"] > 0
    assert report["api"]["ping"]["requestsPerS"] > 0
    retention = report["footprint"]["afterRetention"]
    assert retention["indexPruned"]
    # after retention none of a session's own keys remains; what does is the product's fixed
    # keys (agents, capability sets, step metrics, all-time cost totals and agent metrics) and
    # time buckets that expire by themselves (this hour's cost counters, the agents' five-minute
    # and hourly metrics: how many depends on the boundaries the run crossed)
    assert retention["sessionKeysLeft"] == 0, retention["afterFamilies"]
    assert "unknown" not in retention["afterFamilies"], retention["afterFamilies"]
    assert retention["afterKeys"] <= retention["baselineKeys"] + 12, retention["afterFamilies"]
    printed = capsys.readouterr().out
    assert "chain per-hop ratio" in printed and "written to" in printed
