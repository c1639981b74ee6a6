"""The client's deployment endpoints: report a version's status in an environment (a deployer's
call), and read what runs where, a model's or a version's deployments, and drift, at any instant.
The reads come from a read model, so they read the client's own reports."""

from __future__ import annotations

from datetime import datetime

from registrar.client.calls import Call, instant, query, query_read, segment, write
from registrar.client.model_calls import MODELS
from registrar.contracts.deployments import (
    DeploymentList,
    DeploymentReport,
    DeploymentStatus,
    DriftReport,
    ReportOut,
)
from registrar.contracts.identifiers import uuid7

DEPLOYMENTS = "/v1/deployments"


def report_deployment(
    model: str,
    version: int,
    environment: str,
    status: DeploymentStatus,
    *,
    report_id: str | None = None,
    endpoint: str = "",
    deployer: str = "",
    message: str = "",
) -> Call[ReportOut]:
    """Report that version `version` of `model` is `status` ("deploying", "serving", "failed" or
    "retired") in `environment` (one the governance document declares); a version reported
    serving replaces the one serving there. `report_id` (default: a new UUID) makes it
    idempotent: the same id again records nothing new. `deployer` defaults to the caller."""
    report = DeploymentReport(
        report_id=report_id or str(uuid7()),
        model=model,
        version=version,
        environment=environment,
        status=status,
        endpoint=endpoint,
        deployer=deployer,
        message=message,
    )
    # Its report_id, not the request's Idempotency-Key, is what the server records it once by.
    return write("POST", DEPLOYMENTS, ReportOut.model_validate, report.model_dump(mode="json"))


def deployments(
    *,
    environment: str | None = None,
    model: str | None = None,
    as_of: datetime | str | None = None,
    include_retired: bool = False,
) -> Call[DeploymentList]:
    """Each version's status in each environment at `as_of` (default: now): what runs where,
    since when, reported by whom; of one environment or model if named."""
    params = query(
        environment=environment,
        model=model,
        as_of=instant(as_of),
        include_retired=include_retired or None,
    )
    return query_read(DEPLOYMENTS, DeploymentList.model_validate, params)


def model_deployments(
    model: str, *, environment: str | None = None, as_of: datetime | str | None = None
) -> Call[DeploymentList]:
    """The model's versions in each environment at `as_of` (its name then or now)."""
    params = query(environment=environment, as_of=instant(as_of))
    path = f"{MODELS}/{segment(model)}/deployments"
    return query_read(path, DeploymentList.model_validate, params)


def version_deployments(
    model: str, version: int, *, as_of: datetime | str | None = None
) -> Call[DeploymentList]:
    """The version's status in every environment it was ever reported in, at `as_of`."""
    path = f"{MODELS}/{segment(model)}/versions/{segment(version)}/deployments"
    return query_read(path, DeploymentList.model_validate, query(as_of=instant(as_of)))


def drift(
    *,
    environment: str | None = None,
    model: str | None = None,
    as_of: datetime | str | None = None,
) -> Call[DriftReport]:
    """Each environment (and model) whose serving version at `as_of` is not the one its stage or
    alias names: promoted and not yet deployed, or deployed and since demoted; with since when."""
    params = query(environment=environment, model=model, as_of=instant(as_of))
    return query_read(f"{DEPLOYMENTS}/drift", DriftReport.model_validate, params)
