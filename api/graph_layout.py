"""Where the session page draws each step of its graph (pure): columns by dependency depth,
rows in plan order, edges from each dependency to its dependent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

NODE_WIDTH = 180
NODE_HEIGHT = 46
COLUMN_GAP = 60
ROW_GAP = 18
MARGIN = 10


@dataclass(frozen=True)
class NodeBox:
    step_id: str
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: str  # SVG path data


@dataclass(frozen=True)
class GraphLayout:
    nodes: list[NodeBox]
    edges: list[Edge]
    width: int
    height: int


def layout(order: Sequence[str], depends_on: Mapping[str, Sequence[str]]) -> GraphLayout:
    """Lay out steps (``order``: plan order) given their dependencies."""
    depth: dict[str, int] = {}

    def depth_of(step_id: str, seen: frozenset[str] = frozenset()) -> int:
        if step_id not in depth:
            deps = [d for d in depends_on.get(step_id, ()) if d in order and d not in seen]
            depth[step_id] = 1 + max((depth_of(d, seen | {step_id}) for d in deps), default=-1)
        return depth[step_id]

    rows: dict[int, int] = {}
    boxes: dict[str, NodeBox] = {}
    for step_id in order:
        column = depth_of(step_id)
        row = rows.get(column, 0)
        rows[column] = row + 1
        x = MARGIN + column * (NODE_WIDTH + COLUMN_GAP)
        y = MARGIN + row * (NODE_HEIGHT + ROW_GAP)
        boxes[step_id] = NodeBox(step_id, x, y)
    edges = []
    for step_id in order:
        for dep in depends_on.get(step_id, ()):
            if dep in boxes:
                edges.append(Edge(dep, step_id, _curve(boxes[dep], boxes[step_id])))
    columns = max(rows, default=0) + 1
    width = MARGIN * 2 + columns * NODE_WIDTH + (columns - 1) * COLUMN_GAP
    height = MARGIN * 2 + max(rows.values(), default=1) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    return GraphLayout(list(boxes.values()), edges, width, height)


def _curve(source: NodeBox, target: NodeBox) -> str:
    x1, y1 = source.x + NODE_WIDTH, source.y + NODE_HEIGHT // 2
    x2, y2 = target.x, target.y + NODE_HEIGHT // 2
    middle = (x1 + x2) // 2
    return f"M{x1},{y1} C{middle},{y1} {middle},{y2} {x2},{y2}"
