"""Query parameters shared by the list endpoints, and waiting for the projection to reach the
caller's last write before answering from it."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Query

from registrar.contracts.events import EVENT_TYPES as MODEL_EVENT_TYPES
from registrar.projections.current_state import NAME as CURRENT_STATE
from registrar.projector.halts import halted_message
from registrar.registry import Registry

MAX_POSITION = 2**63 - 1
"""Positions are PostgreSQL bigints."""
PageSize = Annotated[int, Query(ge=1, le=1000, description="At most this many items")]
PageToken = Annotated[str | None, Query(description="next_page_token of the previous page")]
TagFilters = Annotated[
    list[str] | None,
    Query(alias="tag", description="key=value; repeat for several (all must match)"),
]
MinPosition = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_POSITION,
        description="Answer only once the projection includes this global position",
    ),
]


def parse_tag_filters(values: list[str] | None) -> dict[str, str]:
    tags: dict[str, str] = {}
    for value in values or []:
        key, sep, tag_value = value.partition("=")
        if not sep or not key:
            raise HTTPException(422, f"tag filter {value!r} must look like key=value")
        tags[key] = tag_value
    return tags


async def model_event_at(registry: Registry, min_position: int) -> tuple[str, int] | None:
    """What a read model must have applied to include the event at `min_position`: that event's
    (model stream, version); for an event of a stream no read model keeps (tokens, refusals,
    the policy, runs), the newest model event before it; None when there is none. 422 if no
    event is stored at that position."""
    written = await registry.store.stream_version_at(min_position)
    if written is None:
        raise HTTPException(422, f"min_position {min_position} is not a stored event's position")
    return await registry.store.last_of_types_up_to(min_position, MODEL_EVENT_TYPES)


async def wait_for_projection(registry: Registry, min_position: int | None) -> None:
    """Block until the projection shows this process's writes and `min_position`, or 503."""
    also: dict[str, int] = {}
    written = None if min_position is None else await model_event_at(registry, min_position)
    if written is not None:
        also[written[0]] = written[1]
    if not await registry.wait_until_projected(also):
        reason = await registry.halted(CURRENT_STATE)
        if reason is not None:
            raise HTTPException(503, halted_message(CURRENT_STATE, reason))
        raise HTTPException(
            503,
            "the current-state projection has not caught up with your writes within"
            f" {registry.query_wait_seconds:g}s; retry shortly",
        )
