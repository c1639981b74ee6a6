"""The lineage explorer (/ui/lineage?node=...): a node's graph upstream, downstream or both, to
a chosen depth, drawn as SVG and listed as a table, with its impact: every version built from it,
which of them serve in Production or hold an alias, and where they are deployed."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from registrar.api.context import registry_of
from registrar.domain.errors import DomainError
from registrar.projections.lineage import MAX_DEPTH, graph, impact
from registrar.ui.lineage_graph import KIND_LABELS, lineage_svg, node_title
from registrar.ui.rendering import UiRoute, page, query, segment

router = APIRouter(route_class=UiRoute, include_in_schema=False)

MAX_EDGES_SHOWN = 400
"""A graph larger than this is cut (the page says so): a picture of thousands of edges helps
nobody; narrow the depth or the direction."""
EXAMPLES = (
    "dataset:NAME@VERSION",
    "run:RUN_ID",
    "version:MODEL/VERSION",
    "deployment:ENVIRONMENT/MODEL",
)


def node_page(node_id: str) -> str:
    """Where a node's own page is: a version's page, else its graph here."""
    kind, _, rest = node_id.partition(":")
    if kind == "version":
        model, _, number = rest.rpartition("/")
        if model and number.isdigit():
            return f"/ui/models/{segment(model)}/versions/{number}"
    return query("/ui/lineage", node=node_id)


@router.get("/ui/lineage")
async def lineage(
    request: Request,
    node: Annotated[str, Query(max_length=5000)] = "",
    direction: Literal["both", "upstream", "downstream"] = "both",
    depth: Annotated[int, Query(ge=1, le=MAX_DEPTH)] = 2,
) -> Response:
    context = {
        "section": "lineage",
        "node": node,
        "direction": direction,
        "depth": depth,
        "max_depth": MAX_DEPTH,
        "examples": EXAMPLES,
        "answer": None,
        "impact": None,
        "svg": None,
        "problem": "",
        "kind_labels": KIND_LABELS,
        "node_title": node_title,
        "node_page": node_page,
    }
    status = 200
    if node.strip():
        async with registry_of(request).engine.connect() as conn:
            try:
                answer = await graph(conn, node.strip(), direction, depth, MAX_EDGES_SHOWN)
                found = await impact(conn, node.strip())
            except DomainError as refused:
                answer, found = None, None
                context["problem"] = refused.message
                status = 404 if refused.code == "not_found" else 422
        if answer is not None:
            context.update(
                answer=answer,
                impact=found,
                svg=lineage_svg(
                    answer,
                    lambda n: query("/ui/lineage", node=n, direction=direction, depth=depth),
                    "lineage-graph",
                ),
            )
    return page(request, "lineage.html", context, status)
