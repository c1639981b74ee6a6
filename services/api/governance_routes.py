"""Governance reads and records that span a model: its risk assessment (questionnaire or a tier
set directly), a version's compliance with a profile of the governance document (met or not,
with the evidence, as of any instant), and a dry run of a move (what it would need now)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from registrar.api.context import handle, registry_of
from registrar.api.history_routes import AsOf, instant
from registrar.api.model_routes import NamePath
from registrar.api.openapi_document import refusals
from registrar.api.responses import JSON, with_position
from registrar.api.version_routes import VersionPath
from registrar.contracts.api import Body
from registrar.contracts.api_answers import ComplianceReport, MoveValidation, RiskAssessmentOut
from registrar.contracts.commands import AssessRisk
from registrar.contracts.envelope import Envelope
from registrar.contracts.values import AliasName, StageName
from registrar.domain.approvals import standing
from registrar.domain.compliance import compliance_report
from registrar.domain.errors import Conflict, Invalid, NotFound, VersionNotFound
from registrar.domain.risk import refuse_if_blocked
from registrar.domain.state import ModelState, VersionState
from registrar.domain.transition_requests import TransitionRequest
from registrar.registry import Registry

router = APIRouter(tags=["governance"])


class RiskBody(Body):
    """The questionnaire's answers, or a tier with its rationale (the assessor role only)."""

    tier: str | None = None
    answers: dict[str, str] = {}
    rationale: str = ""


class MoveBody(Body):
    stage: StageName | None = None
    alias: AliasName | None = None


def risk_view(model: ModelState) -> dict[str, Any]:
    risk = model.risk
    if risk is None:
        return {"model": model.name, "tier": None}
    return {
        "model": model.name,
        "tier": risk.tier,
        "method": risk.method,
        "answers": risk.answers,
        "rationale": risk.rationale,
        "assessed_by": risk.assessed_by,
        "assessed_at": risk.assessed_at,
        "policy_version": risk.policy_version,
    }


async def version_as_of(
    registry: Registry, name: str, version: int, at: datetime
) -> tuple[ModelState, VersionState, list[Envelope]]:
    """Model `name` (its current name) and its `version` as they stood at `at`, with its stream
    up to then; VersionNotFound when the version did not exist then, or was deleted."""
    model, envelopes = await registry.model_as_of(name, at)
    found = model.live_version(version)
    if found is None:
        raise VersionNotFound(f"model {name!r} had no version {version} then", name, version)
    return model, found, envelopes


@router.post(
    "/v1/models/{name}/risk-assessment",
    status_code=201,
    response_model=RiskAssessmentOut,
    summary="Assess the model's risk: answers to the questionnaire, or a tier and rationale",
    responses=refusals(403, 404, 409),
)
async def assess_risk(name: NamePath, body: RiskBody, request: Request) -> JSON:
    command = AssessRisk(name=name, **body.model_dump())
    outcome = await handle(request, command)
    return with_position(risk_view(outcome.state), outcome.position, 201)


@router.get(
    "/v1/models/{name}/risk-assessment",
    response_model=RiskAssessmentOut,
    summary="The model's risk assessment, now or as of an instant (tier null: not assessed)",
    responses=refusals(404),
)
async def risk_assessment(name: NamePath, request: Request, as_of: AsOf = None) -> JSON:
    registry = registry_of(request)
    if as_of is None:
        return JSON(risk_view(await registry.live_model(name)))
    return JSON(risk_view((await registry.model_as_of(name, instant(as_of)))[0]))


@router.get(
    "/v1/models/{name}/versions/{version}/compliance",
    response_model=ComplianceReport,
    summary="A version against a compliance profile: each requirement met or not, with evidence",
    responses=refusals(404),
)
async def compliance(
    name: NamePath,
    version: VersionPath,
    request: Request,
    profile: Annotated[str, Query(description="A profile of the governance document")],
    as_of: AsOf = None,
) -> JSON:
    registry = registry_of(request)
    at = instant(as_of)
    model, found, envelopes = await version_as_of(registry, name, version, at)
    policies = await registry.commands.policies.as_of(at)
    if profile not in policies.profiles:
        known = ", ".join(policies.profiles) or "none"
        raise NotFound(f"no compliance profile {profile!r} was in force then (profiles: {known})")
    report = compliance_report(profile, model, found, policies, envelopes)
    return JSON({**report, "as_of": at})


@router.post(
    "/v1/models/{name}/versions/{version}/compliance/validate",
    response_model=MoveValidation,
    summary="A dry run: what moving the version to a stage (or an alias) would need now",
    responses=refusals(404),
)
async def validate_move(
    name: NamePath, version: VersionPath, body: MoveBody, request: Request
) -> JSON:
    registry = registry_of(request)
    model = await registry.live_model(name)
    if model.live_version(version) is None:
        raise VersionNotFound(f"model {name!r} has no version {version}", name, version)
    if (body.stage is None) == (body.alias is None):
        raise Invalid("name exactly one target: a stage or an alias")
    policies = await registry.commands.policies.current()
    rule = policies.rule_for(model, body.stage, body.alias)
    draft = TransitionRequest(
        request_id="(dry run)",
        version=version,
        stage=body.stage,
        alias=body.alias,
        archive_existing=False,
        requested_by="",
        comment="",
        created_at=model.updated_at,
        updated_at=model.updated_at,
    )
    now = standing(draft, model, policies)
    blocked = None
    try:
        refuse_if_blocked(model, policies.risk, body.stage, body.alias)
    except Conflict as refusal:  # reported, not raised: this is a dry run
        blocked = refusal.message
    return JSON(
        {
            "model": name,
            "version": version,
            "stage": body.stage.value if body.stage is not None else None,
            "alias": body.alias,
            "governed": rule is not None,
            "scope": rule.scope if rule is not None else None,
            "policy_version": policies.version,
            "approvals_required": now.required,
            "approver_role": now.approver_role.value,
            "gates": [c.model_dump() for c in now.checks],
            "missing": now.missing,
            "blocked": blocked,
        }
    )
