"""Finding plugin objects (agents, tools, selection policies) the way every catalogue does: in
the modules a setting names, and under an entry-point group; each found object comes with the
origin errors name."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

T = TypeVar("T")


def objects_in(value: Any, kind: type[T]) -> list[T]:
    """``value`` itself if it is a ``kind``, the ``kind`` items of a list or tuple, else none."""
    if isinstance(value, kind):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, kind)]
    return []


def import_named(name: str) -> ModuleType:
    """A module by its dotted name, or by the path of its file (``/srv/policies/mine.py``: for
    code that is not an installed package), imported once as ``meowstik_plugin_<stem>``."""
    if not name.endswith(".py") and "/" not in name:
        return importlib.import_module(name)
    path = Path(name).expanduser().resolve()
    module_name = f"meowstik_plugin_{path.stem}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ImportError(f"no Python file at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def discover(
    kind: type[T],
    *,
    modules: Sequence[str],
    setting: str,
    group: str,
    error: type[Exception],
) -> Iterator[tuple[T, str]]:
    """(object, origin) for every ``kind`` object at module level in ``modules`` (named by the
    ``setting``), then under the entry-point ``group``. Raises ``error`` for a module that cannot
    be imported."""
    for module_name in modules:
        try:
            module = import_named(module_name)
        except (ImportError, OSError) as exc:
            what = kind.__name__.lower()
            raise error(f"cannot import {what} module {module_name!r} ({setting}): {exc}") from exc
        for value in vars(module).values():
            for item in objects_in(value, kind):
                yield item, f"module {module_name}"
    for entry_point in entry_points(group=group):
        for item in objects_in(entry_point.load(), kind):
            yield item, f"entry point {entry_point.name}"
