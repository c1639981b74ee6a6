"""Query parameters shared by the list endpoints, and waiting for the projection to reach the
caller's last write before answering from it."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Query

from services.event_store import Checkpoint
from services.registry import Registry

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


async def wait_for_projection(registry: Registry, min_position: int | None, timeout: float) -> None:
    """Block until the projection shows this process's writes and `min_position`, or 503."""
    target: Checkpoint = registry.store.last_checkpoint
    if min_position is not None:
        asked = await registry.store.checkpoint_of(min_position)
        if asked is None:
            raise HTTPException(
                422, f"min_position {min_position} is not a stored event's position"
            )
        target = max(target, asked)
    if not await registry.projector.wait_for(target, timeout):
        raise HTTPException(
            503,
            f"the current-state projection has not reached position {target.position} within"
            f" {timeout:g}s; retry shortly",
        )
