"""Every read model Registrar keeps, by name: what the in-process projectors, the Kafka projector
services (`registrar project`) and replay (`registrar replay`) all build from.

A read model is a `registrar.projections.ports.Projection`: a name, the tables it owns (replay
rebuilds exactly those), and `apply`, which must skip what it has already applied (events arrive
at least once, and in any order across streams when fed from Kafka)."""

from __future__ import annotations

from collections.abc import Callable

from registrar.projections.approvals import ApprovalsProjection
from registrar.projections.audit_trail import AuditTrailProjection
from registrar.projections.current_state import CurrentStateProjection
from registrar.projections.deployments import DeploymentsProjection
from registrar.projections.lineage import LineageProjection
from registrar.projections.ports import EventSource, Projection
from registrar.projections.stage_history import StageHistoryProjection

READ_MODELS: dict[str, Callable[[EventSource], Projection]] = {
    CurrentStateProjection.name: CurrentStateProjection,
    ApprovalsProjection.name: ApprovalsProjection,
    LineageProjection.name: LineageProjection,
    AuditTrailProjection.name: AuditTrailProjection,
    StageHistoryProjection.name: StageHistoryProjection,
    DeploymentsProjection.name: DeploymentsProjection,
}
"""Name → factory. Add a read model here and every runner picks it up."""


def read_model(name: str, store: EventSource) -> Projection:
    try:
        factory = READ_MODELS[name]
    except KeyError:
        choices = ", ".join(READ_MODELS)
        raise ValueError(f"unknown read model {name!r}: choose from {choices}") from None
    return factory(store)
