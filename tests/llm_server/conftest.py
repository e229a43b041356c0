"""A real OpenAI-compatible server that nobody here wrote: llama-cpp-python's server
(``python -m llama_cpp.server``), started as a subprocess on a free loopback port and serving a
tiny random-weight llama model that ``tiny_model.py`` writes with the ``gguf`` package.

The packages come from ``pip install -e '.[dev,llm-server]'`` (``make test-llm-server``; building
llama.cpp from the sdist takes minutes). Without them these tests skip, except under CI=true,
where they fail and say so. ``make test`` does not collect this directory (``norecursedirs`` in
pyproject.toml); ``pytest tests/llm_server`` does.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.llm_server.tiny_model import CONTEXT_LENGTH, write_tiny_llama
from tests.support.redis_server import free_port

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
NEEDED_MODULES = ("llama_cpp", "gguf", "uvicorn", "fastapi", "sse_starlette", "starlette_context")
MODEL = "meowstik-tiny"
API_KEY = "sk-llm-server-test-5d1e"
CONTEXT_WINDOW = CONTEXT_LENGTH  # tokens, as the model file says
CHAT_FORMAT = "chatml-function-calling"  # llama-cpp-python's chatml with a tool-call grammar
STARTUP_DEADLINE_S = 90.0
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class RealLLMServer:
    """llama-cpp-python's server, running."""

    base_url: str  # ends in /v1
    model: str
    api_key: str
    context_window: int
    log_path: Path  # its stdout and stderr


def _missing_modules() -> list[str]:
    return [name for name in NEEDED_MODULES if importlib.util.find_spec(name) is None]


def _wait_until_ready(process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    """Poll GET /v1/models until it answers 200, the process exits or the deadline passes.
    Between attempts the loop waits on the process itself, so an early exit ends it at once."""
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    headers = {"Authorization": f"Bearer {API_KEY}"}
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{base_url}/models", headers=headers, timeout=2.0)
            if answer.status_code == 200:
                return
            last = f"HTTP {answer.status_code}: {answer.text[:200]}"
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        try:
            code = process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(
            f"llama_cpp.server exited with {code} before it was ready; its log ends:\n"
            + log_path.read_text(errors="replace")[-3000:]
        )
    pytest.fail(
        f"llama_cpp.server not ready after {STARTUP_DEADLINE_S} s ({last}); its log ends:\n"
        + log_path.read_text(errors="replace")[-3000:]
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_GRACE_S)


@pytest.fixture(scope="session")
def real_llm_server(tmp_path_factory) -> Iterator[RealLLMServer]:
    missing = _missing_modules()
    if missing:
        why = (
            f"llama-cpp-python's server and gguf are not installed (missing: {', '.join(missing)})"
            "; run `make test-llm-server`"
        )
        if IN_CI:
            pytest.fail(f"required in CI: {why}")
        pytest.skip(why)
    folder = tmp_path_factory.mktemp("llm-server")
    model_path = write_tiny_llama(folder / "tiny-llama.gguf")
    log_path = folder / "server.log"
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--model_alias",
        MODEL,
        "--chat_format",
        CHAT_FORMAT,
        "--n_ctx",
        str(CONTEXT_WINDOW),
        "--n_threads",
        "2",
        "--seed",
        "7",
        "--api_key",
        API_KEY,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    base_url = f"http://127.0.0.1:{port}/v1"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        _wait_until_ready(process, base_url, log_path)
        yield RealLLMServer(base_url, MODEL, API_KEY, CONTEXT_WINDOW, log_path)
    finally:
        _stop(process)
