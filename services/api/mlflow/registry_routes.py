"""MLflow's model registry endpoints (registered-models/*, model-versions/*). Every change is the
same command as through /v1, handled for the caller with their idempotency and correlation ids;
reads by name come from the model's stream, searches from the current-state projection once it
shows the caller's own writes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from pydantic import TypeAdapter

from registrar.api.context import handle, registry_of
from registrar.api.mlflow import entities
from registrar.api.mlflow.errors import RESOURCE_ALREADY_EXISTS, MlflowError, invalid, not_found
from registrar.api.mlflow.fields import Fields
from registrar.api.queries import wait_for_projection
from registrar.api.responses import JSON
from registrar.bus.training_ingest import load_run
from registrar.commands.command_handler import Outcome
from registrar.contracts.commands import (
    Command,
    DeleteAlias,
    DeleteModel,
    DeleteModelTag,
    DeleteVersion,
    DeleteVersionTag,
    RegisterModel,
    RegisterVersion,
    RenameModel,
    SetAlias,
    SetModelTag,
    SetVersionTag,
    TransitionStage,
    UpdateModelDescription,
    UpdateVersionDescription,
)
from registrar.contracts.values import StageName
from registrar.domain.errors import Conflict
from registrar.domain.mlflow_search import (
    MODEL_SEARCH,
    VERSION_SEARCH,
    SearchGrammar,
    parse_filter,
    parse_order_by,
)
from registrar.domain.sources import model_reference, registry_source
from registrar.domain.state import ModelState, VersionState
from registrar.projections.current_state import (
    latest_versions_per_stage,
    model_view,
    models_matching,
    version_view,
    versions_matching,
)
from registrar.registry import Registry

Endpoint = Callable[[Request], Awaitable[JSON]]

_stage_adapter: TypeAdapter[Any] = TypeAdapter(StageName)


async def _handled(request: Request, command: Command) -> Outcome:
    try:
        return await handle(request, command)
    except Conflict as refused:
        if isinstance(command, RegisterModel | RenameModel):
            # MLflow's own answer to a name in use; mlflow.register_model relies on it.
            raise MlflowError(RESOURCE_ALREADY_EXISTS, refused.message) from None
        raise


async def _model(request: Request, fields: Fields) -> ModelState:
    return await registry_of(request).live_model(fields.required("name"))


def _live(state: ModelState, number: int) -> VersionState:
    version = state.live_version(number)
    if version is None:
        raise not_found(f"Model Version (name={state.name}, version={number}) not found")
    return version


def _model_answer(state: ModelState) -> JSON:
    model = entities.registered_model(model_view(state), entities.latest_per_stage(state))
    return JSON({"registered_model": model})


def _version_answer(state: ModelState, number: int) -> JSON:
    view = version_view(state, state.versions[number])
    return JSON({"model_version": entities.model_version(view)})


# Registered models -----------------------------------------------------------------------------


async def create_registered_model(request: Request) -> JSON:
    fields = await Fields.of(request)
    command = RegisterModel(
        name=fields.required("name"),
        description=fields.text("description", ""),
        tags=fields.tags(),
    )
    return _model_answer((await _handled(request, command)).state)


async def get_registered_model(request: Request) -> JSON:
    return _model_answer(await _model(request, await Fields.of(request)))


async def rename_registered_model(request: Request) -> JSON:
    fields = await Fields.of(request)
    command = RenameModel(name=fields.required("name"), new_name=fields.required("new_name"))
    return _model_answer((await _handled(request, command)).state)


async def update_registered_model(request: Request) -> JSON:
    fields = await Fields.of(request)
    description = fields.text("description")
    if description is None:
        return _model_answer(await _model(request, fields))
    command = UpdateModelDescription(name=fields.required("name"), description=description)
    return _model_answer((await _handled(request, command)).state)


async def delete_registered_model(request: Request) -> JSON:
    fields = await Fields.of(request)
    await _handled(request, DeleteModel(name=fields.required("name")))
    return JSON({})


async def set_registered_model_tag(request: Request) -> JSON:
    fields = await Fields.of(request)
    command = SetModelTag(
        name=fields.required("name"), key=fields.required("key"), value=_value(fields)
    )
    await _handled(request, command)
    return JSON({})


async def delete_registered_model_tag(request: Request) -> JSON:
    fields = await Fields.of(request)
    command = DeleteModelTag(name=fields.required("name"), key=fields.required("key"))
    await _handled(request, command)
    return JSON({})


def _value(fields: Fields) -> str:
    value = fields.text("value")
    if value is None:
        fields.required("value")
    return value or ""


async def get_latest_versions(request: Request) -> JSON:
    fields = await Fields.of(request)
    wanted = {_stage_adapter.validate_python(stage).value for stage in fields.texts("stages")}
    state = await _model(request, fields)
    latest = [v for v in entities.latest_per_stage(state) if not wanted or v["stage"] in wanted]
    latest.sort(key=lambda v: int(v["version"]))
    return JSON({"model_versions": [entities.model_version(v) for v in latest]})


async def set_registered_model_alias(request: Request) -> JSON:
    fields = await Fields.of(request)
    command = SetAlias(
        name=fields.required("name"), alias=fields.required("alias"), version=fields.version()
    )
    await _handled(request, command)
    return JSON({})


async def delete_registered_model_alias(request: Request) -> JSON:
    fields = await Fields.of(request)
    command = DeleteAlias(name=fields.required("name"), alias=fields.required("alias"))
    state = await _model(request, fields)
    if command.alias in state.aliases:  # deleting an alias no version holds: nothing to do
        await _handled(request, command)
    return JSON({})


async def get_model_version_by_alias(request: Request) -> JSON:
    fields = await Fields.of(request)
    alias = fields.required("alias")
    state = await _model(request, fields)
    if alias.lower() == "latest":
        number = state.latest_live_version()
        if number is None:
            raise not_found(f"Latest version not found for model {state.name}.")
    elif alias in state.aliases:
        number = state.aliases[alias]
    else:
        # MLflow answers an unknown alias with INVALID_PARAMETER_VALUE, not a 404.
        raise invalid(f"Registered model alias {alias} not found.")
    return _version_answer(state, _live(state, number).version)


async def search_registered_models(request: Request) -> JSON:
    fields = await Fields.of(request)
    rows, token = await _search(request, fields, MODEL_SEARCH, 100, 1000)
    registry = registry_of(request)
    async with registry.engine.connect() as conn:
        latest = await latest_versions_per_stage(conn, [row["id"] for row in rows])
    models = [entities.registered_model(row, latest.get(row["id"], [])) for row in rows]
    return JSON(_page("registered_models", models, token))


async def _search(
    request: Request, fields: Fields, grammar: SearchGrammar, default_size: int, max_size: int
) -> tuple[list[dict[str, Any]], str | None]:
    clauses = parse_filter(fields.text("filter"), grammar)
    order = parse_order_by(fields.texts("order_by"), grammar)
    page_size = fields.integer("max_results", default_size, 1, max_size)
    page_token = fields.text("page_token") or None
    registry = registry_of(request)
    await wait_for_projection(registry, None)
    matching = models_matching if grammar is MODEL_SEARCH else versions_matching
    async with registry.engine.connect() as conn:
        return await matching(conn, clauses, order, page_size, page_token)


def _page(key: str, items: list[dict[str, Any]], token: str | None) -> dict[str, Any]:
    return {key: items, **({"next_page_token": token} if token else {})}


# Model versions --------------------------------------------------------------------------------


async def create_model_version(request: Request) -> JSON:
    fields = await Fields.of(request)
    name, source = fields.required("name"), fields.required("source")
    run_id = fields.text("run_id", "") or ""
    details: dict[str, Any] = {}
    recorded = await load_run(registry_of(request), run_id) if run_id else None
    if recorded is not None:
        # A version of a run Registrar recorded carries the run's lineage, as when ingested; its
        # source is the run's artifact, also when given as the path the MLflow client resolved.
        run = recorded.run
        resolved = f"{entities.run_artifact_uri(run_id)}/{entities.MODEL_ARTIFACT_PATH}"
        if source in (resolved, run.artifact.uri):
            source = run.artifact.uri
            details = {"digest": run.artifact.digest, "size": run.artifact.size}
        details |= {"metrics": run.metrics, "params": run.params, "datasets": run.datasets}
    command = RegisterVersion(
        name=name,
        source=source,
        run_id=run_id,
        tags=fields.tags(),
        description=fields.text("description", ""),
        **details,
    )
    outcome = await _handled(request, command)
    return _version_answer(outcome.state, int(outcome.events[-1].payload["version"]))


async def get_model_version(request: Request) -> JSON:
    fields = await Fields.of(request)
    state = await _model(request, fields)
    return _version_answer(state, _live(state, fields.version()).version)


async def update_model_version(request: Request) -> JSON:
    fields = await Fields.of(request)
    name, number = fields.required("name"), fields.version()
    description = fields.text("description")
    if description is None:
        state = await _model(request, fields)
        return _version_answer(state, _live(state, number).version)
    command = UpdateVersionDescription(name=name, version=number, description=description)
    return _version_answer((await _handled(request, command)).state, number)


async def delete_model_version(request: Request) -> JSON:
    fields = await Fields.of(request)
    await _handled(request, DeleteVersion(name=fields.required("name"), version=fields.version()))
    return JSON({})


async def transition_model_version_stage(request: Request) -> JSON:
    """To a stage a promotion policy governs, the move becomes a transition request (the same
    one as POST /v1/.../transition-requests; a pending one for the move is reused): unless it
    applied at once, the command handler refuses it with a Conflict naming the request, what it
    still needs and how to approve it, which MLflow clients get as RESOURCE_CONFLICT (409, not
    retried). RESOURCE_CONFLICT rather than INVALID_STATE (500 in MLflow's own status table: a
    server fault) or PERMISSION_DENIED (the caller may ask; the move waits on the approvers)."""
    fields = await Fields.of(request)
    command = TransitionStage(
        name=fields.required("name"),
        version=fields.version(),
        stage=fields.required("stage"),
        archive_existing=fields.flag("archive_existing_versions"),
    )
    return _version_answer((await _handled(request, command)).state, command.version)


MAX_COPY_HOPS = 10
"""A copy of a copy of ... is followed this far to the artifact's storage location."""


async def get_model_version_download_uri(request: Request) -> JSON:
    fields = await Fields.of(request)
    state = await _model(request, fields)
    version = _live(state, fields.version())
    if version.manifest_digest:  # sealed in Registrar: served by api/mlflow/artifact_proxy.py
        return JSON({"artifact_uri": registry_source(state.model_id, version.version)})
    return JSON({"artifact_uri": await _storage_location(registry_of(request), version.source)})


async def _storage_location(registry: Registry, source: str) -> str:
    """Where a version's files are: its source, or for a copied version (a `models:/` source of
    this registry, as MlflowClient.copy_model_version makes), where the version it was copied
    from keeps its files (Registrar's artifact proxy if they are sealed here)."""
    for _ in range(MAX_COPY_HOPS):
        reference = model_reference(source)
        if reference is None:
            return source
        name, which = reference
        loaded = await registry.commands.load(name)
        model = loaded.state if loaded is not None else None
        if model is None or model.deleted or model.name != name:
            return source
        version = model.live_version(_version_meant(model, which))
        if version is None:
            return source
        if version.manifest_digest:
            return registry_source(model.model_id, version.version)
        source = version.source
    return source


def _version_meant(model: ModelState, which: str) -> int:
    """The version number `which` means: a number, an alias, or a stage (its newest version)."""
    if which.isdigit():
        return int(which)
    if which in model.aliases:
        return model.aliases[which]
    in_stage = [
        number
        for number, version in model.versions.items()
        if not version.deleted and version.stage.value.lower() == which.lower()
    ]
    return max(in_stage, default=0)


async def set_model_version_tag(request: Request) -> JSON:
    fields = await Fields.of(request)
    command = SetVersionTag(
        name=fields.required("name"),
        version=fields.version(),
        key=fields.required("key"),
        value=_value(fields),
    )
    await _handled(request, command)
    return JSON({})


async def delete_model_version_tag(request: Request) -> JSON:
    fields = await Fields.of(request)
    command = DeleteVersionTag(
        name=fields.required("name"), version=fields.version(), key=fields.required("key")
    )
    await _handled(request, command)
    return JSON({})


async def search_model_versions(request: Request) -> JSON:
    fields = await Fields.of(request)
    rows, token = await _search(request, fields, VERSION_SEARCH, 10_000, 200_000)
    return JSON(_page("model_versions", [entities.model_version(row) for row in rows], token))


ENDPOINTS: list[tuple[str, str, Endpoint]] = [
    ("POST", "registered-models/create", create_registered_model),
    ("GET", "registered-models/get", get_registered_model),
    ("POST", "registered-models/rename", rename_registered_model),
    ("PATCH", "registered-models/update", update_registered_model),
    ("DELETE", "registered-models/delete", delete_registered_model),
    ("GET", "registered-models/search", search_registered_models),
    ("POST", "registered-models/get-latest-versions", get_latest_versions),
    ("GET", "registered-models/get-latest-versions", get_latest_versions),
    ("POST", "registered-models/set-tag", set_registered_model_tag),
    ("DELETE", "registered-models/delete-tag", delete_registered_model_tag),
    ("POST", "registered-models/alias", set_registered_model_alias),
    ("DELETE", "registered-models/alias", delete_registered_model_alias),
    ("GET", "registered-models/alias", get_model_version_by_alias),
    ("POST", "model-versions/create", create_model_version),
    ("GET", "model-versions/get", get_model_version),
    ("PATCH", "model-versions/update", update_model_version),
    ("DELETE", "model-versions/delete", delete_model_version),
    ("GET", "model-versions/search", search_model_versions),
    ("POST", "model-versions/transition-stage", transition_model_version_stage),
    ("GET", "model-versions/get-download-uri", get_model_version_download_uri),
    ("POST", "model-versions/set-tag", set_model_version_tag),
    ("DELETE", "model-versions/delete-tag", delete_model_version_tag),
]
