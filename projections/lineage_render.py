"""Drawing a lineage graph (the JSON of `projections.lineage.graph`) for people: Mermaid or
Graphviz DOT text. Pure functions of the graph; edges are drawn as data flows, input to output."""

from __future__ import annotations

from typing import Any

from registrar.contracts.codec import dumps

FORMATS = ("json", "mermaid", "dot")

_SHAPES = {  # Mermaid node shapes by kind, with the DOT shape that looks alike
    "dataset": (("[(", ")]"), "cylinder"),
    "run": (("([", "])"), "oval"),
    "commit": (("{{", "}}"), "hexagon"),
    "version": (("[", "]"), "box"),
    "deployment": (("[/", "/]"), "parallelogram"),
}


def node_label(node: dict[str, Any]) -> str:
    """What a node is called in a drawing: its id, with a version's stage and aliases."""
    label = str(node["id"])
    if node["kind"] == "version":
        notes = [] if node.get("stage") in (None, "None") else [str(node["stage"])]
        notes += [f"@{alias}" for alias in node.get("aliases") or []]
        if node.get("deleted"):
            notes.append("deleted")
        if notes:
            label += f" ({', '.join(notes)})"
    return label


def edge_label(edge: dict[str, Any]) -> str:
    return str(edge.get("relation") or edge["kind"])


def _mermaid_text(value: str) -> str:
    # Inside "...", Mermaid takes HTML entities; a raw quote would end the label.
    return value.replace("&", "&amp;").replace('"', "&quot;")


def to_mermaid(graph: dict[str, Any]) -> str:
    """A Mermaid flowchart, inputs on the left: `flowchart LR`, one line per node and edge."""
    ids = {node["id"]: f"n{i}" for i, node in enumerate(graph["nodes"])}
    lines = ["flowchart LR"]
    for node in graph["nodes"]:
        (opening, closing), _ = _SHAPES.get(node["kind"], (("[", "]"), "box"))
        label = _mermaid_text(node_label(node))
        lines.append(f'    {ids[node["id"]]}{opening}"{label}"{closing}')
    for edge in graph["edges"]:
        label = _mermaid_text(edge_label(edge))
        lines.append(f'    {ids[edge["to"]]} -->|"{label}"| {ids[edge["from"]]}')
    return "\n".join(lines) + "\n"


def _dot_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(graph: dict[str, Any]) -> str:
    """A Graphviz digraph, inputs on the left (`dot -Tsvg` draws it)."""
    lines = ["digraph lineage {", "    rankdir=LR;"]
    for node in graph["nodes"]:
        _, shape = _SHAPES.get(node["kind"], (("[", "]"), "box"))
        lines.append(
            f'    "{_dot_text(node["id"])}" [label="{_dot_text(node_label(node))}", shape={shape}];'
        )
    for edge in graph["edges"]:
        lines.append(
            f'    "{_dot_text(edge["to"])}" -> "{_dot_text(edge["from"])}"'
            f' [label="{_dot_text(edge_label(edge))}"];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(graph: dict[str, Any], format: str) -> str:
    """`graph` as `format`: json, mermaid or dot."""
    if format == "mermaid":
        return to_mermaid(graph)
    if format == "dot":
        return to_dot(graph)
    if format == "json":
        return dumps(graph).decode() + "\n"
    raise ValueError(f"unknown format {format!r}: choose from {', '.join(FORMATS)}")
