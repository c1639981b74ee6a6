"""Fifty approvers approving one request at once, through two command handlers on separate
connection pools, on a real PostgreSQL, with the relay and the promotions publisher on a real
broker: exactly the required approvals count, exactly one stage change, one promotion."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from test_promotions import of_model, promotions_publisher
from topic_log import RUN, TopicLog, relayed_store, unique

from registrar.commands.command_handler import CommandHandler, CommandMeta
from registrar.contracts.commands import (
    ApproveTransition,
    RegisterModel,
    RegisterVersion,
    RequestTransition,
    SetAlias,
)
from registrar.contracts.identifiers import uuid7
from registrar.contracts.policies import PolicyDocument, PolicyRule
from registrar.contracts.topics import REGISTRY_PROMOTIONS
from registrar.contracts.values import Role, Stage
from registrar.domain.errors import Conflict
from registrar.store.database import create_engine
from registrar.store.event_store import PostgresEventStore

pytestmark = pytest.mark.asyncio(loop_scope="session")

APPROVERS = 50
DIGEST = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.fixture(scope="module")
async def store(engine: AsyncEngine, kafka_bootstrap: str) -> AsyncIterator[PostgresEventStore]:
    """The store, with a relay publishing its events to registry.events."""
    async with relayed_store(engine, kafka_bootstrap) as store:
        yield store


@pytest.fixture(scope="module")
async def other_store(database_url: str) -> AsyncIterator[PostgresEventStore]:
    """The same database through a second connection pool, as a second API process has."""
    engine = create_engine(database_url, pool_size=10)
    yield PostgresEventStore(engine)
    await engine.dispose()


async def test_fifty_approvers_at_once_make_exactly_one_stage_change_and_one_promotion(
    store: PostgresEventStore, other_store: PostgresEventStore, kafka_bootstrap: str
) -> None:
    handlers = [CommandHandler(store), CommandHandler(other_store)]
    policy = PolicyDocument(
        stages={
            Stage.PRODUCTION: PolicyRule(
                approvals=3, approver_role=Role.APPROVER, gates=["artifact.digest"]
            )
        }
    )
    await handlers[0].policies.apply(policy, actor="ada", role=Role.ADMIN, command_id=uuid7())
    name = unique("fraud")

    def rita() -> CommandMeta:  # a new command id for each command
        return CommandMeta("rita", role=Role.CONTRIBUTOR)

    await handlers[0].handle(RegisterModel(name=name), rita())
    await handlers[0].handle(RegisterVersion(name=name, source="s3://m/1", digest=DIGEST), rita())
    requested = await handlers[1].handle(
        RequestTransition(name=name, version=1, stage="Production"), rita()
    )
    (request_id,) = requested.state.requests

    log = TopicLog(kafka_bootstrap, REGISTRY_PROMOTIONS.name)
    await log.start()
    async with promotions_publisher(kafka_bootstrap, store, f"test.approvals.{RUN}"):
        outcomes = await asyncio.gather(
            *(
                handlers[i % 2].handle(
                    ApproveTransition(name=name, request_id=request_id),
                    CommandMeta(f"approver-{i}", role=Role.APPROVER),
                )
                for i in range(APPROVERS)
            ),
            return_exceptions=True,
        )
        # A last, ungoverned move: its promotion comes after any the approvals made.
        await handlers[0].handle(SetAlias(name=name, alias="marker", version=1), rita())
        await log.wait_for(lambda r: any(p["alias"] == "marker" for p in of_model(r, name)))
    await log.stop()

    accepted = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(accepted) == 3
    assert all(isinstance(r, Conflict) and "is applied" in r.message for r in refused)
    events = await store.read_stream(requested.stream.stream_id)
    approvals = [e for e in events if e.type == "TransitionApproved"]
    moves = [e for e in events if e.type == "StageChanged"]
    assert len(approvals) == 3
    assert len({e.payload["by"] for e in approvals}) == 3
    (move,) = moves
    assert move.payload["to_stage"] == "Production"
    counted = [a["by"] for a in move.payload["authorization"]["approvals"]]
    assert counted == [e.payload["by"] for e in approvals]
    promotions = [p for p in of_model(log.records, name) if p["kind"] == "stage"]
    assert len(promotions) == 1
    assert promotions[0]["to_stage"] == "Production"
    assert [a["actor"] for a in promotions[0]["approvals"]] == counted
