"""Finding plugin objects (agents, tools) the way every catalogue does: in the modules a setting
names, and under an entry-point group; each found object comes with the origin errors name."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from importlib.metadata import entry_points
from typing import Any, TypeVar

T = TypeVar("T")


def objects_in(value: Any, kind: type[T]) -> list[T]:
    """``value`` itself if it is a ``kind``, the ``kind`` items of a list or tuple, else none."""
    if isinstance(value, kind):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, kind)]
    return []


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
            module = importlib.import_module(module_name)
        except ImportError as exc:
            what = kind.__name__.lower()
            raise error(f"cannot import {what} module {module_name!r} ({setting}): {exc}") from exc
        for value in vars(module).values():
            for item in objects_in(value, kind):
                yield item, f"module {module_name}"
    for entry_point in entry_points(group=group):
        for item in objects_in(entry_point.load(), kind):
            yield item, f"entry point {entry_point.name}"
