"""The deployments read model on a real PostgreSQL: each report applied once in effect whatever
the batches and redeliveries, intervals that keep a renamed model's history under its new name,
a deleted model's deployments ended at its deletion, and a deployment node in lineage that
follows its environment's serving version."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import text

from registrar.commands.command_handler import CommandMeta
from registrar.commands.promotion_policies import PromotionPolicies
from registrar.contracts.commands import (
    DeleteModel,
    RegisterModel,
    RegisterVersion,
    RenameModel,
    ReportDeployment,
)
from registrar.contracts.envelope import Envelope
from registrar.contracts.identifiers import uuid7
from registrar.contracts.policies import PolicyDocument
from registrar.contracts.values import Role
from registrar.projections.deployments import DeploymentsProjection, deployments_at
from registrar.projections.lineage import LineageProjection, graph
from registrar.projector.runner import Projector
from registrar.registry import Registry
from registrar.store.event_store import START

pytestmark = pytest.mark.asyncio(loop_scope="session")

TABLES = ("deployment_models", "deployment_history")


@pytest.fixture(scope="module")
async def registry(database_url: str) -> AsyncIterator[Registry]:
    """A registry whose projectors do not run: the tests drive the projections."""
    opened = await Registry.open(database_url)
    await _history(opened)
    yield opened
    await opened.close()


async def _history(registry: Registry) -> None:
    """Model `churn` (renamed `attrition`) served in prod by 1 then 2, 3 failing there; model
    `doomed` serving in prod, then deleted."""
    await PromotionPolicies(registry.store).apply(
        PolicyDocument.model_validate({"environments": {"prod": {}, "staging": {}}}),
        actor="admin",
        role=Role.ADMIN,
        command_id=uuid7(),
    )
    handle = registry.commands.handle

    def meta() -> CommandMeta:  # a command id of its own per command
        return CommandMeta("argo", role=Role.DEPLOYER)

    def report(name: str, version: int, status: str, where: str = "prod") -> ReportDeployment:
        return ReportDeployment(
            name=name, version=version, environment=where, status=status, report_id=str(uuid7())
        )

    for name in ("churn", "doomed"):
        await handle(RegisterModel(name=name), CommandMeta("ci"))
        for number in (1, 2, 3):
            await handle(
                RegisterVersion(name=name, source=f"s3://{name}/{number}"), CommandMeta("ci")
            )
    await handle(report("churn", 1, "serving"), meta())
    await handle(report("churn", 1, "serving", "staging"), meta())
    await handle(report("churn", 2, "deploying"), meta())
    await handle(report("churn", 2, "serving"), meta())
    await handle(report("churn", 3, "failed"), meta())
    await handle(RenameModel(name="churn", new_name="attrition"), CommandMeta("ci"))
    await handle(report("attrition", 2, "serving", "staging"), meta())
    await handle(report("doomed", 1, "serving"), meta())
    await handle(DeleteModel(name="doomed"), CommandMeta("ci"))


async def tables(registry: Registry) -> dict[str, list[dict[str, Any]]]:
    async with registry.engine.connect() as conn:
        return {
            table: [
                dict(row._mapping)
                for row in await conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4"))
            ]
            for table in TABLES
        }


async def rebuilt(registry: Registry, batch_size: int) -> dict[str, list[dict[str, Any]]]:
    async with registry.engine.begin() as conn:
        for table in TABLES:
            await conn.execute(text(f"DELETE FROM {table}"))
        await conn.execute(
            text("DELETE FROM projection_checkpoints WHERE projection = 'deployments'")
        )
    projector = Projector(
        registry.store, DeploymentsProjection(registry.store), batch_size=batch_size
    )
    await projector.load_checkpoint()
    while await projector.catch_up_once():
        pass
    return await tables(registry)


async def everything(registry: Registry) -> list[Envelope]:
    return [recorded.envelope for recorded in await registry.store.read_all(START, 100_000)]


async def at(registry: Registry, instant: datetime, **filters: Any) -> list[tuple[Any, ...]]:
    async with registry.engine.connect() as conn:
        rows = await deployments_at(conn, instant, **filters)
    return [(r["environment"], r["model"], r["version"], r["status"]) for r in rows]


async def test_what_runs_where_follows_the_reports(registry: Registry) -> None:
    await rebuilt(registry, 1000)
    events = await everything(registry)
    last = events[-1].recorded_at

    assert await at(registry, last) == [
        ("prod", "attrition", 2, "serving"),
        ("prod", "attrition", 3, "failed"),
        ("staging", "attrition", 2, "serving"),
    ]
    reported = [e for e in events if e.type == "DeploymentReported"]
    # Just after churn 2 began serving in prod, under the name it had then shown as it is now.
    assert await at(registry, reported[3].recorded_at, environment="prod") == [
        ("prod", "attrition", 2, "serving")
    ]
    assert ("prod", "attrition", 1, "retired") in await at(registry, last, retired=True)
    deleted = next(e for e in events if e.type == "ModelDeleted")
    assert ("prod", "doomed", 1, "serving") in await at(registry, reported[-1].recorded_at)
    assert all(row[1] != "doomed" for row in await at(registry, deleted.recorded_at, retired=True))


async def test_a_repeated_status_keeps_when_it_began(registry: Registry) -> None:
    await rebuilt(registry, 1000)
    last = (await everything(registry))[-1].recorded_at
    async with registry.engine.connect() as conn:
        rows = await deployments_at(conn, last, environment="prod", version=2)
    (row,) = [r for r in rows if r["model"] == "attrition"]
    assert row["since"] == row["reported_at"]  # serving since its own report


@pytest.mark.parametrize("batch_size", [1, 3, 7])
async def test_any_batching_gives_the_same_read_model(registry: Registry, batch_size: int) -> None:
    expected = await rebuilt(registry, 1000)

    assert await rebuilt(registry, batch_size) == expected


async def test_applying_the_same_events_again_changes_nothing(registry: Registry) -> None:
    before = await rebuilt(registry, 1000)
    events = await everything(registry)
    projection = DeploymentsProjection(registry.store)
    for delivered in (events, events[len(events) // 2 :], events[-3:]):
        async with registry.engine.begin() as conn:
            await projection.apply(conn, delivered)
        assert await tables(registry) == before


async def test_lineage_keeps_one_deployment_node_per_environment_and_model(
    registry: Registry,
) -> None:
    async with registry.engine.begin() as conn:
        for table in ("lineage_nodes", "lineage_edges", "lineage_models", "lineage_model_names"):
            await conn.execute(text(f"DELETE FROM {table}"))
        await conn.execute(text("DELETE FROM projection_checkpoints WHERE projection = 'lineage'"))
    projector = Projector(registry.store, LineageProjection(registry.store), batch_size=2)
    await projector.load_checkpoint()
    while await projector.catch_up_once():
        pass

    async with registry.engine.connect() as conn:
        prod = await graph(conn, "deployment:prod/attrition", "upstream", 1)
        by_former_name = await graph(conn, "deployment:staging/churn", "upstream", 1)

    assert prod["node"] == "deployment:prod/attrition"
    assert prod["edges"] == [
        {"from": "deployment:prod/attrition", "to": "version:attrition/2", "kind": "deployed_as"}
    ]
    node = next(n for n in prod["nodes"] if n["kind"] == "deployment")
    assert (node["environment"], node["model"], node["serving_version"]) == ("prod", "attrition", 2)
    assert by_former_name["node"] == "deployment:staging/attrition"
