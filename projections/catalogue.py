"""Every read model Registrar keeps, by name: what the in-process projectors, the Kafka projector
services (`registrar project`) and replay (`registrar replay`) all build from.

A read model is a `services.projector.Projection`: a name, the tables it owns (replay rebuilds
exactly those), and `apply`, which must skip what it has already applied (events arrive at least
once, and in any order across streams when fed from Kafka)."""

from __future__ import annotations

from collections.abc import Callable

from projections.approvals import ApprovalsProjection
from projections.audit_trail import AuditTrailProjection
from projections.current_state import CurrentStateProjection
from projections.lineage import LineageProjection
from projections.stage_history import StageHistoryProjection
from services.event_store import PostgresEventStore
from services.projector import Projection

READ_MODELS: dict[str, Callable[[PostgresEventStore], Projection]] = {
    CurrentStateProjection.name: CurrentStateProjection,
    ApprovalsProjection.name: ApprovalsProjection,
    LineageProjection.name: LineageProjection,
    AuditTrailProjection.name: AuditTrailProjection,
    StageHistoryProjection.name: StageHistoryProjection,
}
"""Name → factory. Add a read model here and every runner picks it up."""


def read_model(name: str, store: PostgresEventStore) -> Projection:
    try:
        factory = READ_MODELS[name]
    except KeyError:
        choices = ", ".join(READ_MODELS)
        raise ValueError(f"unknown read model {name!r}: choose from {choices}") from None
    return factory(store)
