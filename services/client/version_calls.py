"""The client's version endpoints: register versions with their lineage, read, list and search
them, move them between stages, describe, tag and delete them; and read a training run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel

from registrar.client.calls import (
    Call,
    Paged,
    Query,
    fields,
    instant,
    paged,
    query,
    read,
    segment,
    tag_filters,
    write,
)
from registrar.client.model_calls import MODELS
from registrar.contracts.api import Deleted, RunWithVersions, VersionOut, VersionPage
from registrar.contracts.card_document import ModelCardDocument
from registrar.contracts.model_card import ModelCardPatch
from registrar.contracts.values import DatasetRef, ParentRef


def _versions(model: str) -> str:
    return f"{MODELS}/{segment(model)}/versions"


def _version(model: str, version: int) -> str:
    return f"{_versions(model)}/{segment(version)}"


def _json(value: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    return dict(value)


def register_version(
    model: str,
    source: str,
    *,
    run_id: str | None = None,
    digest: str | None = None,
    size: int | None = None,
    metrics: Mapping[str, float] | None = None,
    params: Mapping[str, str] | None = None,
    datasets: Sequence[DatasetRef | Mapping[str, Any]] | None = None,
    parents: Sequence[ParentRef | Mapping[str, Any]] | None = None,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
    model_type: str | None = None,
    framework: str | None = None,
    idempotency_key: str | UUID | None = None,
) -> Call[VersionOut]:
    """Register the next version of `model` from the artifact at `source`; the answer's
    `version` is its number. Its lineage: the `datasets` it was trained on (DatasetRef, or
    {"name", "version", "uri", "digest"}) and the `parents` it derives from (ParentRef, or
    {"model", "version", "relation"}); `model_type` ("gradient-boosted trees") and `framework`
    ("scikit-learn 1.5") say what it is and what built it. The same `idempotency_key` (a UUID)
    again, even from another process, registers nothing new and answers with the version
    registered the first time."""
    body = fields(
        source=source,
        run_id=run_id,
        digest=digest,
        size=size,
        metrics=dict(metrics) if metrics else None,
        params=dict(params) if params else None,
        datasets=[_json(d) for d in datasets] if datasets else None,
        parents=[_json(p) for p in parents] if parents else None,
        tags=dict(tags) if tags else None,
        description=description,
        model_type=model_type,
        framework=framework,
    )
    return write("POST", _versions(model), VersionOut.model_validate, body, idempotency_key)


def get_version(model: str, version: int) -> Call[VersionOut]:
    """The version as it is now (strongly consistent)."""
    return read(_version(model, version), VersionOut.model_validate)


def _listing_query(
    stage: str | None,
    alias: str | None,
    run_id: str | None,
    tags: Mapping[str, str] | None,
    include_deleted: bool,
    page_size: int,
    **more: str | None,
) -> Query:
    return query(
        **more,
        stage=stage,
        alias=alias,
        run_id=run_id,
        tag=tag_filters(tags),
        include_deleted=include_deleted or None,
        page_size=page_size,
    )


def list_versions(
    model: str,
    stage: str | None = None,
    *,
    alias: str | None = None,
    run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    include_deleted: bool = False,
    page_size: int = 100,
) -> Paged[VersionOut]:
    """Every version of `model` (in `stage`, holding `alias`, from `run_id`, carrying `tags`,
    when given), by number. NotFound, when iterated, if there is no such model."""
    params = _listing_query(stage, alias, run_id, tags, include_deleted, page_size)
    return paged(_versions(model), VersionPage.model_validate, lambda page: page.versions, params)


def search_versions(
    *,
    model: str | None = None,
    stage: str | None = None,
    alias: str | None = None,
    run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    include_deleted: bool = False,
    page_size: int = 100,
) -> Paged[VersionOut]:
    """Every version, across models, that matches all the filters given."""
    params = _listing_query(stage, alias, run_id, tags, include_deleted, page_size, model=model)
    return paged("/v1/versions", VersionPage.model_validate, lambda page: page.versions, params)


def update_version(
    model: str,
    version: int,
    *,
    description: str | None = None,
    metrics: Mapping[str, float] | None = None,
) -> Call[VersionOut]:
    """Change the version's description, record metrics on it, or both."""
    body = fields(description=description, metrics=dict(metrics) if metrics else None)
    return write("PATCH", _version(model, version), VersionOut.model_validate, body)


def update_model_card(
    model: str, version: int, card: ModelCardPatch | Mapping[str, str]
) -> Call[VersionOut]:
    """Set model-card fields (intended_use, limitations, ...): those left out stay, "" clears."""
    path = f"{_version(model, version)}/card"
    return write("PATCH", path, VersionOut.model_validate, _json(card))


def model_card(
    model: str,
    version: int,
    format: Literal["json", "markdown", "html"] = "json",
    as_of: datetime | str | None = None,
) -> Call[ModelCardDocument | str]:
    """The version's model card (as it stood at `as_of`, else now): a ModelCardDocument, every
    section in order, for "json"; the rendered text for "markdown" or "html" (a standalone
    page)."""
    rendered = format != "json"

    def parse(answer: Any) -> ModelCardDocument | str:
        return str(answer) if rendered else ModelCardDocument.model_validate(answer)

    params = query(format=format, as_of=instant(as_of))
    return Call("GET", f"{_version(model, version)}/card", parse, params, text=rendered)


def set_stage(
    model: str, version: int, stage: str, archive_existing: bool = False
) -> Call[VersionOut]:
    """Move the version to `stage` (None, Staging, Production or Archived); `archive_existing`
    moves the stage's other versions to Archived. Conflict if a promotion policy governs the
    stage: the message names the transition request it opened instead."""
    body = {"stage": stage, "archive_existing": archive_existing}
    return write("POST", f"{_version(model, version)}/stage", VersionOut.model_validate, body)


def set_version_tag(model: str, version: int, key: str, value: str) -> Call[VersionOut]:
    """Set one tag of the version."""
    path = f"{_version(model, version)}/tags/{segment(key)}"
    return write("PUT", path, VersionOut.model_validate, {"value": value})


def delete_version_tag(model: str, version: int, key: str) -> Call[VersionOut]:
    """Remove one tag of the version."""
    path = f"{_version(model, version)}/tags/{segment(key)}"
    return write("DELETE", path, VersionOut.model_validate)


def delete_version(model: str, version: int) -> Call[Deleted]:
    """Delete the version (its number is never reused; its aliases are released)."""
    return write("DELETE", _version(model, version), Deleted.model_validate)


def get_run(run_id: str) -> Call[RunWithVersions]:
    """A recorded training run and the versions registered from it."""
    return read(f"/v1/runs/{segment(run_id)}", RunWithVersions.model_validate)
