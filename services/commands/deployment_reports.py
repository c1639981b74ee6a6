"""Recording a deployer's report, whichever door it came through (HTTP, the client, Kafka
`deployment.status`): the command's id is derived from the report's id, so a report sent again
(a retry, a redelivered message) is recorded once, and the same id sent with another report is
refused rather than answered with the first one."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from registrar.commands.command_handler import (
    CommandHandler,
    CommandMeta,
    IdempotencyKeyReused,
    Outcome,
)
from registrar.contracts.commands import ReportDeployment
from registrar.contracts.deployments import DeploymentReport, report_command_id
from registrar.contracts.values import Role
from registrar.domain.errors import Invalid


def report_command(report: DeploymentReport) -> ReportDeployment:
    return ReportDeployment(
        name=report.model,
        version=report.version,
        environment=report.environment,
        status=report.status,
        report_id=report.report_id,
        endpoint=report.endpoint,
        deployer=report.deployer,
        message=report.message,
    )


async def record_report(
    commands: CommandHandler,
    report: DeploymentReport,
    actor: str,
    role: Role,
    correlation_id: UUID | None = None,
) -> Outcome:
    """Record `report` as `actor` with `role`; raises DomainError if the registry refuses it."""
    meta = CommandMeta(
        actor,
        report_command_id(report.report_id),
        correlation_id=correlation_id,
        role=role,
        # The report id is the deployer's idempotency key: the same id with another report is a
        # mistake to tell, not a retry to answer with the first one.
        chosen_by_caller=True,
    )
    try:
        return await commands.handle(report_command(report), meta)
    except IdempotencyKeyReused:
        raise Invalid(
            f"report_id {report.report_id!r} was used before for another report (another model,"
            " version, environment, status, text or sender): send each report with a new"
            " report_id, and the same one only when sending the same report again"
        ) from None


def report_answer(outcome: Outcome, report: DeploymentReport) -> dict[str, Any]:
    """What `report` recorded (or, when it repeated what was known, the status it repeated)."""
    recorded = next((e for e in outcome.events if e.type == "DeploymentReported"), None)
    if recorded is not None:
        payload = recorded.payload
        answer = {
            "model": outcome.state.name,
            **{k: payload.get(k) for k in ("version", "environment", "status", "report_id")},
            **{k: payload.get(k) or "" for k in ("endpoint", "deployer", "message")},
            "reported_at": recorded.recorded_at,
            "replaced_version": payload.get("replaced_version"),
            "recorded": True,
        }
    else:
        known = outcome.state.versions[report.version].deployments[report.environment]
        answer = {
            "model": outcome.state.name,
            "version": report.version,
            "environment": report.environment,
            "status": known.status,
            "endpoint": known.endpoint,
            "deployer": known.deployer,
            "message": known.message,
            "report_id": known.report_id,
            "reported_at": known.reported_at,
            "replaced_version": None,
            "recorded": False,
        }
    return {**answer, "position": outcome.position}
