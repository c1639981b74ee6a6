"""Deployments: what a deployer reports about a version in an environment (over HTTP, the Python
client, or Kafka topic `deployment.status`), how the governance document declares environments
and what each follows, and the answers of the deployments read model (what runs where, drift)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from registrar.contracts.api import Answer
from registrar.contracts.identifiers import derived_event_id
from registrar.contracts.values import (
    AliasName,
    Frozen,
    Inbound,
    ModelName,
    StageName,
    VersionNumber,
)

DeploymentStatus = Literal["deploying", "serving", "failed", "retired"]
"""deploying: being rolled out; serving: takes traffic (one version per model and environment:
a version reported serving replaces the one that served there); failed: its rollout failed, or
it stopped serving by failure; retired: taken down."""
DEPLOYMENT_STATUSES: tuple[DeploymentStatus, ...] = ("deploying", "serving", "failed", "retired")

EnvironmentName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description='An environment of the governance document, e.g. "prod"',
    ),
]
ReportId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="The deployer's id of this report, unique across the registry (a UUID is"
        " best): sent again, the report is recorded once",
    ),
]
Endpoint = Annotated[str, Field(max_length=4096, description="Where it serves, e.g. a URL")]
Deployer = Annotated[
    str, Field(max_length=256, description='The deploying system, e.g. "argo-cd" ("" : the caller)')
]
ReportMessage = Annotated[str, Field(max_length=10_000)]


class DeploymentReport(Inbound):
    """A deployer's report of `version` of `model` in `environment`: the body of
    POST /v1/deployments, and the message on Kafka topic `deployment.status`."""

    report_id: ReportId
    model: ModelName
    version: VersionNumber
    environment: EnvironmentName
    status: DeploymentStatus
    endpoint: Endpoint = ""
    deployer: Deployer = ""
    message: ReportMessage = ""


_REPORT_IDS = uuid.UUID("5b0c2f4e-8d3a-5e61-9f27-1c4d6a8b0e13")
"""The namespace report ids are hashed in (a report id is the deployer's text, not a UUID)."""
_COMMAND_OF_REPORT = 3_000_000
"""Which id derived from a report's is its command's: not one a command derives from its own id
(its events count from 0, its parts from 1,000,000), nor a message's (2,000,000)."""


def report_command_id(report_id: str) -> uuid.UUID:
    """The command id of report `report_id`: the same over every door and every retry, so the
    report is recorded once."""
    return derived_event_id(uuid.uuid5(_REPORT_IDS, report_id), _COMMAND_OF_REPORT)


# The governance document's environments ------------------------------------------------------


class Follows(Frozen):
    """What an environment should serve: the newest version in a stage (as `models:/m/Stage`
    resolves), or the version an alias names. Exactly one of the two (the governance document
    is refused otherwise: registrar.domain.policies.document_problems)."""

    stage: StageName | None = None
    alias: AliasName | None = None


class Environment(Frozen):
    """An environment deployers report to (`[environments.prod]`). Reports to an environment
    the document does not declare are refused."""

    follows: Follows | None = Field(
        default=None, description="What it should serve; none: reports only, no drift"
    )
    models: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list,
        max_length=100,
        description='Model-name globs drift is checked for, e.g. "credit-*" (empty: every model)',
    )
    description: Annotated[str, Field(max_length=10_000)] = ""


# Answers ---------------------------------------------------------------------------------------


class DeploymentOut(Answer):
    """A version's status in an environment, as last reported (at `as_of`)."""

    environment: str
    model: str
    version: int
    status: str = Field(description="deploying, serving, failed or retired")
    since: datetime = Field(description="When the version entered this status there")
    reported_at: datetime = Field(description="When the report that says so was recorded")
    deployer: str
    endpoint: str = ""
    message: str = ""
    report_id: str = ""
    replaced_by: int | None = Field(
        default=None, description="Retired because this version began serving there instead"
    )
    actor: str = Field(default="", description="Who sent the report (the token's user)")


class DeploymentList(Answer):
    as_of: datetime
    deployments: list[DeploymentOut]


class ReportOut(Answer):
    """A report as recorded: the version's status in the environment it set."""

    model: str
    version: int
    environment: str
    status: str
    endpoint: str
    deployer: str
    message: str
    report_id: str
    reported_at: datetime
    replaced_version: int | None = Field(
        default=None, description="The version that served there until this one (serving only)"
    )
    recorded: bool = Field(description="False: it repeated the status already known")
    position: int


class FollowsOut(Answer):
    stage: str | None = None
    alias: str | None = None


class DriftOut(Answer):
    """An environment whose serving version is not the one its stage or alias names."""

    environment: str
    model: str
    follows: FollowsOut
    expected_version: int | None = Field(description="What the stage or alias names (none: null)")
    serving_version: int | None = Field(description="What serves there (none: null)")
    reason: Literal["promoted", "demoted"] = Field(
        description="promoted: a newer version (or a first one) is named and not yet deployed;"
        " demoted: the serving version was moved away and an older one, or none, is named"
    )
    since: datetime = Field(description="When the environment and its target last agreed")
    lag_seconds: float = Field(description="How long it has lagged, at as_of")


class DriftReport(Answer):
    as_of: datetime
    drift: list[DriftOut]
