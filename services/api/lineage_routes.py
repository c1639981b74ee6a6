"""/v1/lineage: a node's lineage graph, and the impact of a node (every version descending from
it), from the lineage projection."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from registrar.api.context import registry_of
from registrar.api.openapi_document import refusals
from registrar.api.queries import MinPosition
from registrar.api.read_model_wait import wait_for_read_model
from registrar.api.responses import JSON
from registrar.contracts.api_answers import Impact, LineageGraph
from registrar.projections.lineage import (
    MAX_DEPTH,
    MAX_EDGES,
    MAX_EDGES_LIMIT,
    NAME,
    Direction,
    graph,
    impact,
)
from registrar.projections.ports import stream_applied

router = APIRouter(tags=["lineage"])

NodeId = Annotated[
    str,
    Query(
        min_length=1,
        max_length=5000,
        description="dataset:NAME@VERSION, run:RUN_ID, commit:REPOSITORY@SHA,"
        " version:MODEL/VERSION or deployment:ENVIRONMENT/MODEL",
    ),
]

# Has lineage applied the event at a client's min_position? Exact for model streams (named by
# UUIDs) and runs (`run:ID`); other stream kinds (other prefixes) pass lineage by without a
# trace, so its highest applied position is all there is to compare.
_APPLIED = stream_applied(
    "lineage_models",
    # A run has no model row: its node, once recorded, says it was applied.
    first=" WHEN :stream LIKE 'run:%' THEN EXISTS ("
    "   SELECT 1 FROM lineage_nodes WHERE node_key = :stream AND recorded)",
)


@router.get(
    "/v1/lineage",
    response_model=LineageGraph,
    summary="A node's lineage: the nodes and edges within `depth` edges up and/or downstream",
    responses=refusals(503),
)
async def lineage(
    request: Request,
    node: NodeId,
    direction: Direction = "both",
    depth: Annotated[int, Query(ge=1, le=MAX_DEPTH, description="How many edges away")] = 3,
    max_edges: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_EDGES_LIMIT,
            description="The most edges to return, nearest first; `truncated` says if there"
            " were more",
        ),
    ] = MAX_EDGES,
    min_position: MinPosition = None,
) -> JSON:
    registry = registry_of(request)
    await wait_for_read_model(registry, NAME, min_position, _APPLIED)
    async with registry.engine.connect() as conn:
        return JSON(await graph(conn, node, direction, depth, max_edges))


@router.get(
    "/v1/lineage/impact",
    response_model=Impact,
    summary="Every version descending from a node, and which are in Production or hold an alias",
    responses=refusals(503),
)
async def lineage_impact(request: Request, node: NodeId, min_position: MinPosition = None) -> JSON:
    registry = registry_of(request)
    await wait_for_read_model(registry, NAME, min_position, _APPLIED)
    async with registry.engine.connect() as conn:
        return JSON(await impact(conn, node))
