"""The pure core imports nothing that does I/O: every orchestrator.core module, imported in a
fresh interpreter, leaves redis, celery, kombu, flask and requests unimported."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import orchestrator.core

FORBIDDEN = ("redis", "celery", "kombu", "flask", "requests", "werkzeug", "httpx", "openai")


def core_modules() -> list[str]:
    return sorted(
        f"orchestrator.core.{info.name}"
        for info in pkgutil.iter_modules(orchestrator.core.__path__)
    )


def test_the_core_package_has_the_modules_the_architecture_names() -> None:
    names = {name.rsplit(".", 1)[1] for name in core_modules()}
    assert {
        "models",
        "statuses",
        "errors",
        "graph",
        "selection",
        "steps",
        "ids",
        "logentry",
    } <= names


def test_importing_every_core_module_imports_no_io_library() -> None:
    program = (
        "import importlib, json, sys\n"
        f"for name in {core_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == []


def test_the_check_notices_a_forbidden_import() -> None:
    """The probe itself can fail: a module that imports redis is reported."""
    program = (
        "import json, sys\nimport redis\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    assert "redis" in json.loads(done.stdout)
