"""Promotions for deployment systems: every stage change, alias move and alias removal, read from
`registry.events` and published as one integration message each on `registry.promotions`
(key = model name), with what a deployment needs: version, stage or alias, artifact, who, and
for a rollback, why and from which version."""

from __future__ import annotations

import logging
from typing import Any, Literal
from uuid import UUID, uuid5

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from registrar.bus.inbound import acknowledged_after, dead_letter, problems, raw_body
from registrar.bus.kafka_broker import UNHURRIED_CONSUMER_TUNING
from registrar.contracts.codec import dumps
from registrar.contracts.envelope import Envelope
from registrar.contracts.events import (
    EVENT_TYPES,
    AliasDeleted,
    AliasSet,
    StageChanged,
    event_from_payload,
)
from registrar.contracts.integration import Approval, Artifact, Promotion
from registrar.contracts.topics import REGISTRY_EVENTS, REGISTRY_PROMOTIONS, group_name, topic_name
from registrar.domain.state import ModelState
from registrar.projections.stream_states import StreamStates
from registrar.store.event_store import PostgresEventStore

log = logging.getLogger("registrar.promotions")

PROMOTION_IDS = UUID("6d1f3c52-8a47-5e0b-9b1e-2f64c0a7d3e9")
"""The uuid5 namespace of promotion message ids (fixed forever: ids must never change)."""

_PROMOTING_EVENTS = {
    cls.model_fields["type"].default for cls in (StageChanged, AliasSet, AliasDeleted)
}


def promotion_message_id(event_id: UUID) -> UUID:
    """The message id of the promotion an event makes: derived from the event id alone, so every
    redelivery, republication or rebuild carries the same one."""
    return uuid5(PROMOTION_IDS, str(event_id))


def promotions_for(envelope: Envelope, state: ModelState) -> list[Promotion]:
    """The promotions the stored event `envelope` makes, given `state`, the model's state with
    that event applied: one for each StageChanged (the requested move, and each version
    archive-existing or a rollback moved aside), each AliasSet and each AliasDeleted (kind
    "alias_removed": the alias no longer points to that version); none for any other event.

    For an alias move or removal both stage fields hold the version's stage at that moment. A
    rollback's move carries `rollback` (its reason, and the versions it went from and to).
    """
    if envelope.type not in _PROMOTING_EVENTS:
        return []
    if envelope.position is None:
        raise ValueError(f"event {envelope.event_id} is not stored yet: it has no position")
    event = event_from_payload(envelope.type, envelope.payload)
    assert isinstance(event, StageChanged | AliasSet | AliasDeleted)
    version = state.versions.get(event.version)
    if version is None:
        raise ValueError(
            f"model {state.name!r} has no version {event.version}: the state given is not the"
            f" state at event {envelope.event_id}"
        )
    authorization = None if isinstance(event, AliasDeleted) else event.authorization
    approvals = [
        Approval(actor=a.by, at=a.at, comment=a.comment)
        for a in (authorization.approvals if authorization is not None else [])
    ]
    kind: Literal["stage", "alias", "alias_removed"]
    if isinstance(event, StageChanged):
        kind, alias, from_stage, to_stage = "stage", None, event.from_stage, event.to_stage
    else:
        kind = "alias" if isinstance(event, AliasSet) else "alias_removed"
        alias, from_stage, to_stage = event.alias, version.stage, version.stage
    return [
        Promotion(
            message_id=promotion_message_id(envelope.event_id),
            model=state.name,
            version=str(event.version),
            kind=kind,
            from_stage=from_stage,
            to_stage=to_stage,
            alias=alias,
            artifact=Artifact(uri=version.source, digest=version.digest),
            actor=envelope.actor,
            approvals=approvals,
            authorization=authorization,
            rollback=authorization.rollback if authorization is not None else None,
            position=envelope.position,
            occurred_at=envelope.recorded_at,
        )
    ]


def promotion_message(promotion: Promotion) -> tuple[bytes, bytes, dict[str, str]]:
    """(key, value, headers) of a promotion on registry.promotions."""
    headers = {
        "message-id": str(promotion.message_id),
        "kind": promotion.kind,
        "position": str(promotion.position),
    }
    return promotion.model.encode(), dumps(promotion.model_dump(mode="json")), headers


def attach_promotions(
    broker: KafkaBroker,
    store: PostgresEventStore,
    group_id: str = "registrar.promotions",
    *,
    prefix: str = "",
) -> None:
    """Publish a Promotion for every StageChanged, AliasSet and AliasDeleted on
    `registry.events`, from `broker` (started by the caller), in consumer group `group_id`;
    `prefix` (REGISTRAR_TOPIC_PREFIX) is put before the topics' names and the group's.

    At least once: an event is acknowledged only after the broker confirmed its promotion, so a
    crash in between, a rebalance, or a broker that restarted empty (the relay republishes, the
    group starts over) publishes it again, with the same `message_id`. Deployment systems
    deduplicate on it. A new group starts at the earliest event, so no promotion is skipped.

    The model's state at each event is folded from the events this consumer sees, or read from
    the store on a miss or gap; events of other streams (training runs) are passed over. A
    failure (the database or the broker unavailable, or an event this code cannot fold) is
    retried from the same event after a pause, never acknowledged: skipping it could lose a
    promotion. Bytes that are not an event envelope are dead-lettered.
    """
    states = StreamStates(store)

    async def promote(body: bytes, record: ConsumerRecord[Any, Any]) -> None:
        try:
            envelope = Envelope.model_validate_json(body)
        except ValidationError as invalid:
            reason = f"not an event envelope: {problems(invalid)}"
            await dead_letter(broker, record, reason, prefix=prefix)
            return
        if envelope.type not in EVENT_TYPES:
            return  # not a model stream's event (e.g. a training run's): it promotes nothing
        state = await states.state_after(envelope)
        if state is None:
            log.warning(
                "promotions: event %s of stream %s skipped: the stream is not in this store",
                envelope.event_id,
                envelope.stream_id,
            )
            return
        for promotion in promotions_for(envelope, state):
            key, value, headers = promotion_message(promotion)
            await broker.publish(value, promotions_topic, key=key, headers=headers)

    promotions_topic = topic_name(REGISTRY_PROMOTIONS, prefix)
    broker.subscriber(
        topic_name(REGISTRY_EVENTS, prefix),
        **UNHURRIED_CONSUMER_TUNING,
        group_id=group_name(group_id, prefix),
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        decoder=raw_body,
        title="promotions",
    )(acknowledged_after(promote, log, broker, max_bytes=None, prefix=prefix))
