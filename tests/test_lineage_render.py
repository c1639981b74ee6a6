"""Drawing a lineage graph as Mermaid and DOT: pure functions, no database."""

from __future__ import annotations

import json
from typing import Any

import pytest

from registrar.projections.lineage_render import node_label, render, to_dot, to_mermaid

GRAPH: dict[str, Any] = {
    "node": "version:churn/2",
    "nodes": [
        {"id": "dataset:clicks@v3", "kind": "dataset", "uri": "s3://d"},
        {"id": "run:r-1", "kind": "run", "recorded": False},
        {"id": "version:churn/1", "kind": "version", "stage": "None", "aliases": []},
        {
            "id": "version:churn/2",
            "kind": "version",
            "stage": "Production",
            "aliases": ["champion"],
            "deleted": False,
        },
    ],
    "edges": [
        {"from": "run:r-1", "to": "dataset:clicks@v3", "kind": "trained_on"},
        {"from": "version:churn/2", "to": "run:r-1", "kind": "produced_by"},
        {
            "from": "version:churn/2",
            "to": "version:churn/1",
            "kind": "derived_from",
            "relation": "fine_tuned",
        },
    ],
}


def test_mermaid_draws_each_kind_in_its_shape_with_data_flowing_to_what_was_made() -> None:
    assert to_mermaid(GRAPH) == (
        "flowchart LR\n"
        '    n0[("dataset:clicks@v3")]\n'
        '    n1(["run:r-1"])\n'
        '    n2["version:churn/1"]\n'
        '    n3["version:churn/2 (Production, @champion)"]\n'
        '    n0 -->|"trained_on"| n1\n'
        '    n1 -->|"produced_by"| n3\n'
        '    n2 -->|"fine_tuned"| n3\n'
    )


def test_dot_draws_the_same_graph_for_graphviz() -> None:
    assert to_dot(GRAPH) == (
        "digraph lineage {\n"
        "    rankdir=LR;\n"
        '    "dataset:clicks@v3" [label="dataset:clicks@v3", shape=cylinder];\n'
        '    "run:r-1" [label="run:r-1", shape=oval];\n'
        '    "version:churn/1" [label="version:churn/1", shape=box];\n'
        '    "version:churn/2" [label="version:churn/2 (Production, @champion)", shape=box];\n'
        '    "dataset:clicks@v3" -> "run:r-1" [label="trained_on"];\n'
        '    "run:r-1" -> "version:churn/2" [label="produced_by"];\n'
        '    "version:churn/1" -> "version:churn/2" [label="fine_tuned"];\n'
        "}\n"
    )


def test_quotes_in_names_cannot_break_out_of_a_label() -> None:
    graph = {
        "nodes": [
            {"id": 'dataset:say "hi"\\', "kind": "dataset"},
            {"id": "commit:git@host:r@1", "kind": "commit"},
        ],
        "edges": [{"from": "commit:git@host:r@1", "to": 'dataset:say "hi"\\', "kind": "x"}],
    }
    assert '"dataset:say &quot;hi&quot;\\"' in to_mermaid(graph)
    assert '{{"commit:git@host:r@1"}}' in to_mermaid(graph)
    assert '"dataset:say \\"hi\\"\\\\" [label="dataset:say \\"hi\\"\\\\"' in to_dot(graph)


def test_a_deleted_version_says_so_in_its_label() -> None:
    version = {"id": "version:m/1", "kind": "version", "stage": "Archived", "deleted": True}
    assert node_label(version) == "version:m/1 (Archived, deleted)"


def test_json_is_the_graph_itself_and_unknown_formats_are_refused() -> None:
    assert json.loads(render(GRAPH, "json")) == GRAPH
    assert render(GRAPH, "mermaid") == to_mermaid(GRAPH)
    with pytest.raises(ValueError, match="choose from json, mermaid, dot"):
        render(GRAPH, "svg")
