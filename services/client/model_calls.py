"""The client's model endpoints: register, read, list, describe, rename, tag and delete models, and
point their aliases at versions."""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from registrar.client.calls import (
    Call,
    Paged,
    fields,
    paged,
    query,
    read,
    segment,
    tag_filters,
    write,
)
from registrar.contracts.api import Deleted, ModelOut, ModelPage, VersionOut

MODELS = "/v1/models"


def _model(name: str) -> str:
    return f"{MODELS}/{segment(name)}"


def create_model(
    name: str,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    *,
    idempotency_key: str | UUID | None = None,
) -> Call[ModelOut]:
    """Register a model. Conflict if the name is taken."""
    body = fields(name=name, description=description, tags=dict(tags) if tags else None)
    return write("POST", MODELS, ModelOut.model_validate, body, idempotency_key)


def get_model(name: str) -> Call[ModelOut]:
    """The model as it is now (strongly consistent). NotFound if there is none by that name (or
    it was renamed or deleted: the message says which)."""
    return read(_model(name), ModelOut.model_validate)


def list_models(
    name: str | None = None,
    *,
    tags: Mapping[str, str] | None = None,
    include_deleted: bool = False,
    page_size: int = 100,
) -> Paged[ModelOut]:
    """Every model whose name matches the glob `name` (* and ? wildcards) and that carries all
    of `tags`, by name; fetched `page_size` at a time as the iteration goes."""
    params = query(
        name=name,
        tag=tag_filters(tags),
        include_deleted=include_deleted or None,
        page_size=page_size,
    )
    return paged(MODELS, ModelPage.model_validate, lambda page: page.models, params)


def update_model(
    name: str, *, description: str | None = None, new_name: str | None = None
) -> Call[ModelOut]:
    """Change the model's description, rename it, or both."""
    body = fields(description=description, name=new_name)
    return write("PATCH", _model(name), ModelOut.model_validate, body)


def delete_model(name: str) -> Call[Deleted]:
    """Delete the model; its name is released (a new model may take it)."""
    return write("DELETE", _model(name), Deleted.model_validate)


def set_model_tag(name: str, key: str, value: str) -> Call[ModelOut]:
    """Set one tag of the model."""
    path = f"{_model(name)}/tags/{segment(key)}"
    return write("PUT", path, ModelOut.model_validate, {"value": value})


def delete_model_tag(name: str, key: str) -> Call[ModelOut]:
    """Remove one tag of the model."""
    return write("DELETE", f"{_model(name)}/tags/{segment(key)}", ModelOut.model_validate)


def get_alias(model: str, alias: str) -> Call[VersionOut]:
    """The version an alias names now ("latest": the newest live version)."""
    return read(f"{_model(model)}/aliases/{segment(alias)}", VersionOut.model_validate)


def set_alias(model: str, alias: str, version: int) -> Call[VersionOut]:
    """Point an alias at a version (moving it from the version it named before)."""
    path = f"{_model(model)}/aliases/{segment(alias)}"
    return write("PUT", path, VersionOut.model_validate, {"version": version})


def delete_alias(model: str, alias: str) -> Call[Deleted]:
    """Remove an alias."""
    return write("DELETE", f"{_model(model)}/aliases/{segment(alias)}", Deleted.model_validate)
