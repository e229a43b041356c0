"""Smoke test of the API capacity benchmark's load generators against the reference app.

One second per route is enough to show both generators send, count successes and count a 404
as an error; the figures themselves are not checked.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest

from benchmarks.http_load import LoadResult, MinimalApp, _load_python, _load_wrk
from tests.conftest import require

pytestmark = pytest.mark.integration

LoadFn = Callable[..., LoadResult]


def wrk_load(url: str, method: str = "GET", body: dict | None = None) -> LoadResult:
    wrk = shutil.which("wrk")
    require(wrk is not None, "wrk on PATH (apt-get install -y wrk)")
    return _load_wrk(wrk, url, method, body, None, 1, 4, 2)


def python_load(url: str, method: str = "GET", body: dict | None = None) -> LoadResult:
    return _load_python(url, method, body, None, 1, 2)


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[MinimalApp]:
    with MinimalApp(1, 4, tmp_path_factory.mktemp("minimal-app")) as running:
        yield running


@pytest.mark.parametrize("send", [wrk_load, python_load], ids=["wrk", "python"])
def test_load_counts_successes_and_errors(app: MinimalApp, send: LoadFn) -> None:
    for result in (
        send(f"{app.url}/ping"),
        send(f"{app.url}/echo", "POST", {"goal": "smoke", "quote": '"\\\n'}),
    ):
        assert result.requests > 0, result
        assert result.errors == 0, result
        assert result.requests_per_s > 0, result

    missing = send(f"{app.url}/no-such-route")
    assert missing.requests > 0, missing
    assert missing.errors == missing.requests, missing
    assert missing.requests_per_s == 0, missing
