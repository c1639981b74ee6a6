"""The promotion policy's stream (`policy`): the policy in force, read with one query (the
events after the last one this process folded), and applying a new one (admin only, refused
whole when a gate cannot be parsed; re-applying the policy in force changes nothing)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from registrar.contracts.identifiers import derived_event_id
from registrar.contracts.policies import POLICY_SCHEMA_VERSION, POLICY_STREAM_ID, PolicyDocument
from registrar.contracts.values import Role
from registrar.domain.policies import NO_POLICIES, PolicySet, decide_policy, fold_policies
from registrar.retrying import appended_with_retries
from registrar.store.event_store import (
    NewEvent,
    PostgresEventStore,
    StreamHead,
)

log = logging.getLogger("registrar.policies")


@dataclass(frozen=True, slots=True)
class PolicyStream:
    """The policy in force, as of the stream's `head`; `position` of its last event (0: none)."""

    policies: PolicySet = NO_POLICIES
    head: StreamHead = StreamHead()
    position: int = 0


class PromotionPolicies:
    def __init__(
        self, store: PostgresEventStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.store = store
        self.clock = clock
        self._known = PolicyStream()

    async def load(self) -> PolicyStream:
        """The policy in force now (strongly consistent: reads what was appended since)."""
        known = self._known
        events = await self.store.read_stream(POLICY_STREAM_ID, known.head.version)
        if events:
            last = events[-1]
            known = PolicyStream(
                fold_policies(events, known.policies),
                StreamHead(last.stream_version, last.hash),
                last.position or 0,
            )
            if known.head.version > self._known.head.version:
                self._known = known
        return known

    async def current(self) -> PolicySet:
        return (await self.load()).policies

    async def as_of(self, at: datetime) -> PolicySet:
        """The policy that was in force at `at`."""
        events = await self.store.read_stream(POLICY_STREAM_ID)
        return fold_policies(e for e in events if e.recorded_at <= at)

    async def apply(
        self, document: PolicyDocument, *, actor: str, role: Role, command_id: UUID
    ) -> tuple[PolicyStream, bool]:
        """Put `document` in force for `actor` (who must be an admin): (the stream after, whether
        it changed). Raises a DomainError naming each gate that cannot be parsed."""

        async def once() -> tuple[PolicyStream, bool]:
            loaded = await self.load()
            decided = decide_policy(document, loaded.policies, role)
            if not decided:
                return loaded, False
            new_events = [
                NewEvent(
                    event_id=derived_event_id(command_id, index),
                    type=event.type,
                    payload=event.model_dump(mode="json", exclude={"type"}),
                    recorded_at=self.clock(),
                    actor=actor,
                    causation_id=command_id,
                    correlation_id=command_id,
                    schema_version=POLICY_SCHEMA_VERSION,
                )
                for index, event in enumerate(decided)
            ]
            await self.store.append(POLICY_STREAM_ID, loaded.head, new_events)
            return await self.load(), True

        return await appended_with_retries(once, what="the promotion policy", log=log)
