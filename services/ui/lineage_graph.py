"""A lineage graph (registrar.projections.lineage.graph's answer) as SVG, laid out on the server:
upstream to the left, downstream to the right, one column per step from the node in focus. Each
node links to its own graph; every label is escaped text, and the page lists the same nodes and
edges as a table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from markupsafe import Markup, escape

NODE_WIDTH = 200
NODE_HEIGHT = 46
COLUMN_GAP = 72
ROW_GAP = 14
MARGIN = 12
MAX_TEXT = 27
KIND_LABELS = {
    "dataset": "Dataset",
    "run": "Training run",
    "commit": "Commit",
    "version": "Model version",
    "deployment": "Deployment",
}


def node_title(node: dict[str, Any]) -> str:
    """A node's name for people: the version as "model v3", a dataset as "name@version"."""
    kind = node["kind"]
    if kind == "version":
        return f"{node.get('model')} v{node.get('version')}"
    if kind == "deployment":
        return f"{node.get('model')} in {node.get('environment')}"
    return str(node["id"]).split(":", 1)[-1]


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def layers(answer: dict[str, Any]) -> dict[str, int]:
    """Each node's column: 0 for the node in focus, -n for n steps upstream, +n downstream. An
    edge goes from a node to what it was made from (a version to its dataset, its parent)."""
    column = {answer["node"]: 0}
    edges = answer["edges"]
    changed = True
    while changed:
        changed = False
        for edge in edges:
            made, source = edge["from"], edge["to"]
            if made in column and source not in column:
                column[source] = column[made] - 1
                changed = True
            elif source in column and made not in column:
                column[made] = column[source] + 1
                changed = True
    for node in answer["nodes"]:
        column.setdefault(node["id"], 0)
    return column


def lineage_svg(answer: dict[str, Any], link: Callable[[str], str], graph_id: str) -> Markup:
    """The graph of `answer`; `link(node_id)` is where a node leads."""
    nodes = {node["id"]: node for node in answer["nodes"]}
    column = layers(answer)
    first = min(column.values(), default=0)
    columns: dict[int, list[str]] = {}
    for node_id in sorted(nodes, key=lambda n: (nodes[n]["kind"], node_title(nodes[n]))):
        columns.setdefault(column[node_id] - first, []).append(node_id)
    place: dict[str, tuple[float, float]] = {}
    tallest = max((len(ids) for ids in columns.values()), default=1)
    for index, ids in columns.items():
        x = MARGIN + index * (NODE_WIDTH + COLUMN_GAP)
        offset = (tallest - len(ids)) * (NODE_HEIGHT + ROW_GAP) / 2
        for row, node_id in enumerate(ids):
            place[node_id] = (x, MARGIN + offset + row * (NODE_HEIGHT + ROW_GAP))
    width = MARGIN * 2 + (max(columns, default=0) + 1) * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP
    height = MARGIN * 2 + tallest * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    gid = escape(graph_id)
    parts = [
        f'<svg class="lineage" id="{gid}" viewBox="0 0 {width} {height}" width="{width}"'
        f' height="{height}" aria-labelledby="{gid}-title" data-field="lineage-graph">',
        f'<title id="{gid}-title">Lineage of {escape(node_title(nodes[answer["node"]]))}:'
        f" {len(nodes)} nodes, {len(answer['edges'])} edges</title>",
        f'<defs><marker id="{gid}-arrow" viewBox="0 0 10 10" refX="10" refY="5"'
        ' markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" class="arrow"/></marker></defs>',
    ]
    for edge in answer["edges"]:
        made, source = edge["from"], edge["to"]
        if made not in place or source not in place:
            continue
        (sx, sy), (mx, my) = place[source], place[made]
        x1, y1 = sx + NODE_WIDTH, sy + NODE_HEIGHT / 2
        x2, y2 = mx, my + NODE_HEIGHT / 2
        if x2 <= x1:  # same column (a cycle a foreign store might hold): go around
            x1, x2 = sx + NODE_WIDTH / 2, mx + NODE_WIDTH / 2
            y1, y2 = sy + NODE_HEIGHT, my
        bend = max(abs(x2 - x1) / 2, 30)
        relation = edge.get("relation") or edge["kind"]
        parts.append(
            f'<path class="edge" d="M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f}'
            f' {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}" marker-end="url(#{gid}-arrow)">'
            f"<title>{escape(node_title(nodes[source]))} → {escape(node_title(nodes[made]))}"
            f" ({escape(relation)})</title></path>"
        )
    for node_id, (x, y) in place.items():
        node = nodes[node_id]
        kind = node["kind"]
        focus = " focus" if node_id == answer["node"] else ""
        deleted = " deleted" if node.get("deleted") else ""
        detail = KIND_LABELS.get(kind, kind)
        if kind == "version" and node.get("stage"):
            detail += f" · {node['stage']}"
        parts.append(
            f'<a href="{escape(link(node_id))}" class="node kind-{escape(kind)}{focus}{deleted}"'
            f' data-node="{escape(node_id)}">'
            f"<title>{escape(node_id)}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6"/>'
            f'<text x="{x + 10:.1f}" y="{y + 18:.1f}" class="kind">{escape(detail)}</text>'
            f'<text x="{x + 10:.1f}" y="{y + 36:.1f}" class="name">'
            f"{escape(_short(node_title(node)))}</text></a>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
