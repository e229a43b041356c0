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
    assert report["scale"]["completed"] == report["scale"]["sessions"] == run.QUICK.scale_sessions
    assert report["api"]["status"]["requestsPerS"] > 0
    assert report["api"]["ping"]["requestsPerS"] > 0
    retention = report["footprint"]["afterRetention"]
    assert retention["indexPruned"]
    # after retention only the product's fixed keys remain (agents, metrics, capability sets,
    # the all-time cost totals and this hour's cost counters, which expire by themselves, and
    # the agent's metrics: all-time, this five minutes' and this hour's, which expire too)
    assert retention["afterKeys"] <= retention["baselineKeys"] + 8
    printed = capsys.readouterr().out
    assert "chain per-hop ratio" in printed and "written to" in printed
