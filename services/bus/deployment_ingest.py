"""Deployment ingest: record the deployment reports of topic `deployment.status`, as the
deployment ingest's service principal (user `deployment-ingest`, role deployer: it may report
deployments and nothing else). The message's `deployer` is recorded as the deployer, a fact it
states, never as who may act; the command id is derived from the report id, so a redelivered
message records its report once."""

from __future__ import annotations

import logging

from faststream.kafka import KafkaBroker

from registrar.access.permissions import command_requirement, verdict
from registrar.access.principal import Principal
from registrar.bus.inbound import attach_ingest
from registrar.commands.command_handler import Outcome
from registrar.commands.deployment_reports import record_report, report_command
from registrar.contracts.deployments import DeploymentReport
from registrar.contracts.topics import DEPLOYMENT_STATUS
from registrar.contracts.values import Role
from registrar.domain.errors import Forbidden
from registrar.registry import Registry

log = logging.getLogger("registrar.ingest")

DEPLOYMENT_GROUP = "registrar.deployments"
DEPLOYMENT_PRINCIPAL = Principal("deployment-ingest", Role.DEPLOYER)
"""Who records the reports of `deployment.status`: the least role that may (the topic's own
access, at the broker, says who may write to it)."""


async def ingest_report(
    registry: Registry, message: DeploymentReport, caller: Principal
) -> Outcome:
    """Record the report `message` as `caller`. Raises DomainError if the registry refuses it (a
    caller who may not report, an undeclared environment, no such model or version, the report
    id used before for another report)."""
    # The permission table HTTP and the command bus apply: reporting is the deploy action.
    allowed = verdict(caller.user, caller.role, command_requirement(report_command(message)))
    if not allowed.allowed:
        raise Forbidden(allowed.reason)
    return await record_report(registry.commands, message, caller.user, caller.role)


def attach_deployment_ingest(
    broker: KafkaBroker,
    registry: Registry,
    *,
    group_id: str = DEPLOYMENT_GROUP,
    caller: Principal = DEPLOYMENT_PRINCIPAL,
    retry_delay_seconds: float = 1.0,
    prefix: str = "",
) -> None:
    """Consume `deployment.status` on `broker` into `registry`, in consumer group `group_id`,
    recording as `caller`. A message that is not a valid DeploymentReport, or that the registry
    refuses, is dead-lettered with the reason; see `attach_ingest` (and `prefix` there)."""

    async def record(message: DeploymentReport, as_: Principal) -> None:
        await ingest_report(registry, message, as_)

    attach_ingest(
        broker,
        DEPLOYMENT_STATUS,
        DeploymentReport,
        record,
        lambda message: (
            f"deployment report {message.report_id!r} of version {message.version} of model"
            f" {message.model!r} in {message.environment}"
        ),
        caller=caller,
        group_id=group_id,
        logger=log,
        retry_delay_seconds=retry_delay_seconds,
        prefix=prefix,
    )
