"""A model's page (/ui/models/{name}) and a version's (/ui/models/{name}/versions/{v}), now or
as of any instant: both are folded from the model's own stream (strongly consistent, and exact
for a past instant), the version's with its model card (the card endpoint's document), artifacts,
evaluations and fairness charts, lineage graph, deployments, compliance and timeline. A version's
files download through the UI, so a signed-in browser needs no bearer token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse
from starlette.responses import Response

from registrar.api.artifact_routes import file_response
from registrar.api.context import registry_of
from registrar.api.governance_routes import version_as_of
from registrar.artifacts.artifact_store import ArtifactStore
from registrar.contracts.envelope import Envelope
from registrar.domain.compliance import compliance_report
from registrar.domain.errors import DomainError, Unavailable
from registrar.domain.model_card import card_document
from registrar.domain.state import ModelState, VersionState
from registrar.projections.audit_trail import summary_of
from registrar.projections.lineage import graph
from registrar.projections.registry_overview import owners_of
from registrar.ui.fairness_chart import fairness_chart
from registrar.ui.lineage_graph import lineage_svg
from registrar.ui.rendering import UiRoute, page, query, segment
from registrar.ui.time_travel import time_travel

router = APIRouter(route_class=UiRoute, include_in_schema=False)

NameSegment = Annotated[str, Path(min_length=1, max_length=256)]
VersionSegment = Annotated[int, Path(ge=1, le=2**31 - 1)]
AsOf = Annotated[str | None, Query(max_length=64)]
VERSIONS_SHOWN = 200
HISTORY_SHOWN = 60


def _registered_by(envelopes: list[Envelope]) -> dict[int, str]:
    return {e.payload["version"]: e.actor for e in envelopes if e.type == "VersionRegistered"}


def _history_row(envelope: Envelope) -> dict[str, Any]:
    return {
        "at": envelope.recorded_at,
        "actor": envelope.actor,
        "type": envelope.type,
        "summary": summary_of(envelope.type, envelope.payload),
        "version": envelope.payload.get("version"),
        "position": envelope.position,
    }


@router.get("/ui/models/{name}")
async def model_page(request: Request, name: NameSegment, as_of: AsOf = None) -> Response:
    travel = time_travel(as_of)
    registry = registry_of(request)
    model, envelopes = await registry.model_as_of(name, travel.instant)
    by = _registered_by(envelopes)
    live = [v for v in sorted(model.versions.values(), key=lambda v: -v.version) if not v.deleted]
    async with registry.engine.connect() as conn:
        owners = (await owners_of(conn, [model.model_id])).get(model.model_id, [])
    deployments = [
        {"environment": environment, "version": number, **_deployment(model, number, environment)}
        for environment, number in sorted(model.serving.items())
    ]
    context = {
        "section": "catalogue",
        "travel": travel,
        "model": model,
        "owners": owners,
        "versions": live[:VERSIONS_SHOWN],
        "version_count": len(live),
        "registered_by": by,
        "deployments": deployments,
        "history": [_history_row(e) for e in reversed(envelopes[-HISTORY_SHOWN:])],
        "history_total": len(envelopes),
    }
    return page(request, "model.html", context)


def _deployment(model: ModelState, number: int, environment: str) -> dict[str, Any]:
    version = model.versions.get(number)
    found = version.deployments.get(environment) if version is not None else None
    if found is None:
        return {"status": "serving", "since": None, "deployer": "", "endpoint": ""}
    return {
        "status": found.status,
        "since": found.since,
        "deployer": found.deployer,
        "endpoint": found.endpoint,
    }


def _about_version(envelope: Envelope, number: int, request_ids: set[str]) -> bool:
    payload = envelope.payload
    return payload.get("version") == number or payload.get("request_id") in request_ids


async def _files(request: Request, model: ModelState, version: VersionState) -> dict[str, Any]:
    store: ArtifactStore | None = request.app.state.artifacts
    if store is None:
        return {"available": False, "problem": "This server runs without an artifact store."}
    try:
        files = await store.files_of(model, version)
    except Unavailable as missing:
        return {"available": False, "problem": missing.message}
    return {"available": True, "manifest": files.manifest()}


async def _lineage(request: Request, name: str, number: int) -> dict[str, Any]:
    node = f"version:{name}/{number}"
    async with registry_of(request).engine.connect() as conn:
        try:
            answer = await graph(conn, node, "both", 2, 200)
        except DomainError as missing:  # not in the lineage read model (yet)
            return {"node": node, "svg": None, "problem": missing.message}
    svg = lineage_svg(answer, lambda n: query("/ui/lineage", node=n), "version-lineage")
    return {"node": node, "svg": svg, "answer": answer, "problem": ""}


@router.get("/ui/models/{name}/versions/{version}")
async def version_page(
    request: Request, name: NameSegment, version: VersionSegment, as_of: AsOf = None
) -> Response:
    travel = time_travel(as_of)
    registry = registry_of(request)
    at = travel.instant
    model, found, envelopes = await version_as_of(registry, name, version, at)
    policies = await registry.commands.policies.as_of(at)
    card = card_document(model, found, policies=policies, envelopes=envelopes, as_of=at)
    requests = [r for r in model.requests.values() if r.version == version]
    request_ids = {r.request_id for r in requests}
    timeline = [
        _history_row(e) for e in reversed(envelopes) if _about_version(e, version, request_ids)
    ]
    evaluations = [
        {
            "recorded": recorded,
            "chart": fairness_chart(
                recorded.evaluation.groups,
                recorded.evaluation.sensitive_feature,
                f"fairness-{index}",
            )
            if recorded.kind == "fairness" and recorded.evaluation.groups
            else None,
        }
        for index, recorded in enumerate(reversed(found.evaluations))
    ]
    compliance = [
        compliance_report(profile, model, found, policies, envelopes)
        for profile in sorted(policies.profiles)
    ]
    context = {
        "section": "catalogue",
        "travel": travel,
        "model": model,
        "version": found,
        "aliases": model.aliases_of(version),
        "registered_by": _registered_by(envelopes).get(version, ""),
        "card": card,
        "files": await _files(request, model, found),
        "download_base": f"/ui/models/{segment(name)}/versions/{version}/artifacts/",
        "evaluations": evaluations,
        "lineage": await _lineage(request, model.name, version),
        "deployments": sorted(found.deployments.items()),
        "compliance": compliance,
        "pending": [r for r in requests if r.state == "pending"] if not travel.past else [],
        "timeline": timeline,
    }
    return page(request, "version.html", context)


@router.get("/ui/models/{name}/versions/{version}/artifacts/{path:path}")
async def download(
    request: Request, name: NameSegment, version: VersionSegment, path: str
) -> StreamingResponse:
    """One file of the version, as GET /v1/.../artifacts/{path} serves it (its digest checked
    as it streams), as an attachment."""
    store: ArtifactStore | None = request.app.state.artifacts
    if store is None:
        raise Unavailable("this server runs without an artifact store")
    file = (await store.version_files(name, version)).file(path)
    response = file_response(store, file, request.headers.get("range"))
    filename = segment(path.rsplit("/", 1)[-1] or "artifact")
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{filename}"
    return response
