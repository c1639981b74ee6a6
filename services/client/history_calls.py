"""The client's endpoints about where things came from and what happened when: lineage and
impact, the audit trail, and point-in-time history (stages and aliases as of any instant, who held
a stage, a version's timeline). All come from read models, so all read the client's own writes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import TypeAdapter

from registrar.client.calls import Call, Paged, instant, paged, query, query_read, segment
from registrar.client.model_calls import MODELS
from registrar.contracts.api_answers import (
    AliasesAt,
    AuditPage,
    AuditRow,
    Impact,
    LineageGraph,
    StageHolder,
    StagesAt,
    Timeline,
)

Direction = Literal["upstream", "downstream", "both"]

_STAGES_AT = TypeAdapter(StagesAt)
_ALIASES_AT = TypeAdapter(AliasesAt)
_STAGE_HOLDERS = TypeAdapter(list[StageHolder])


def lineage(
    node: str, direction: Direction = "both", depth: int = 3, *, max_edges: int | None = None
) -> Call[LineageGraph]:
    """The nodes and edges within `depth` edges of `node` (dataset:NAME@VERSION, run:RUN_ID,
    commit:REPOSITORY@SHA, version:MODEL/VERSION or deployment:ENVIRONMENT/MODEL), upstream
    (what it was made from), downstream (what was made from it) or both; nearest first, at most
    `max_edges`."""
    params = query(node=node, direction=direction, depth=depth, max_edges=max_edges)
    return query_read("/v1/lineage", LineageGraph.model_validate, params)


def impact(node: str) -> Call[Impact]:
    """Every version descending from `node` at any depth, and which are in Production or hold
    an alias now: what a bad dataset reaches."""
    return query_read("/v1/lineage/impact", Impact.model_validate, query(node=node))


def audit(
    *,
    actor: str | None = None,
    model: str | None = None,
    version: int | None = None,
    actions: Sequence[str] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    page_size: int = 100,
) -> Paged[AuditRow]:
    """Every event and refused attempt in position order, filtered by who did it, the model (under
    any name it had), the version, the event types (e.g. ["StageChanged"]) and when it was
    recorded (`since` inclusive, `until` exclusive); fetched `page_size` at a time."""
    params = query(
        actor=actor,
        model=model,
        version=version,
        action=list(actions) if actions else None,
        since=instant(since),
        until=instant(until),
        page_size=page_size,
    )
    return paged("/v1/audit", AuditPage.model_validate, lambda page: page.events, params)


def as_of(when: datetime | str, model: str) -> Call[StagesAt]:
    """The versions of `model` in each stage at the instant `when` (a datetime, UTC if it has no
    zone, or RFC 3339 text): {"Production": [3], "Staging": [4], "None": [], "Archived": [1, 2]}.
    `model` is its name then or now (a renamed model's history reads under either)."""
    path = f"{MODELS}/{segment(model)}/stages"
    return query_read(path, _STAGES_AT.validate_python, query(as_of=instant(when)))


def aliases_as_of(when: datetime | str, model: str) -> Call[AliasesAt]:
    """The aliases of `model` at the instant `when`, and the version each named then."""
    path = f"{MODELS}/{segment(model)}/aliases"
    return query_read(path, _ALIASES_AT.validate_python, query(as_of=instant(when)))


def stage_holders(stage: str, when: datetime | str | None = None) -> Call[list[StageHolder]]:
    """Every model's versions in `stage` at the instant `when` (default: now), with the time each
    entered it, by model name."""
    path = f"/v1/stages/{segment(stage)}"
    return query_read(path, _STAGE_HOLDERS.validate_python, query(as_of=instant(when)))


def timeline(model: str, version: int) -> Call[Timeline]:
    """The stages the version was in and the aliases it held, each with when it began and ended."""
    path = f"{MODELS}/{segment(model)}/versions/{segment(version)}/timeline"
    return query_read(path, Timeline.model_validate)
