"""Secrets and their hashes never leave the store: the relay publishes a token's events with the
hash redacted, while the store keeps it (authentication needs it) and its chain still verifies."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from topic_log import TopicLog, relayed_store

from registrar.access.administration import AccessAdministration
from registrar.access.tokens import token_hash
from registrar.commands.command_handler import CommandMeta
from registrar.contracts.codec import loads
from registrar.contracts.events import REDACTED
from registrar.contracts.topics import REGISTRY_EVENTS
from registrar.contracts.values import Role
from registrar.store.chain_verification import verify_chains

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_token_hash_is_redacted_on_the_bus_and_kept_in_the_store(
    engine: AsyncEngine, kafka_bootstrap: str
) -> None:
    events = TopicLog(kafka_bootstrap, REGISTRY_EVENTS.name)
    async with relayed_store(engine, kafka_bootstrap) as store:
        await events.start()
        try:
            issued = await AccessAdministration(store).issue_token(
                "ci", Role.CONTRIBUTOR, CommandMeta("cli:test")
            )
            secret = token_hash(issued.token)

            def published(records: list) -> bool:  # type: ignore[type-arg]
                return any(str(issued.event.token_id).encode() in r.value for r in records)

            await events.wait_for(published)
        finally:
            await events.stop()

    (message,) = [r for r in events.records if str(issued.event.token_id).encode() in r.value]
    assert secret.encode() not in message.value and issued.token.encode() not in message.value
    assert loads(message.value)["payload"]["token_hash"] == REDACTED
    async with engine.connect() as conn:
        stored = await conn.execute(
            text("SELECT payload::jsonb ->> 'token_hash' FROM events WHERE type = 'TokenIssued'")
        )
        assert secret in list(stored.scalars())
        assert (await verify_chains(store)).intact
