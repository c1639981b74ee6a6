"""The promotions deployment systems receive: which events make one, and what it carries. Pure:
events are folded into states here, as the promotions publisher does from registry.events."""

from __future__ import annotations

from uuid import UUID

import pytest
from scenario import AT, MODEL_ID, NAME, model_with_versions, moved, when

from registrar.bus.promotions import promotion_message, promotion_message_id, promotions_for
from registrar.contracts.codec import loads
from registrar.contracts.commands import RequestRollback, TransitionStage
from registrar.contracts.envelope import GENESIS_HASH, Envelope
from registrar.contracts.events import (
    AliasDeleted,
    AliasSet,
    Event,
    ModelRenamed,
    TransitionRequested,
    VersionTagSet,
)
from registrar.contracts.identifiers import uuid7
from registrar.contracts.integration import Promotion
from registrar.contracts.policies import (
    ApprovalRecord,
    GateCheck,
    Rollback,
    TransitionAuthorization,
)
from registrar.contracts.values import Role, Stage
from registrar.domain.approvals import DecisionContext
from registrar.domain.decider import decide
from registrar.domain.state import ModelState, fold

DIGEST = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def stored(*events: Event, actor: str = "alice") -> list[Envelope]:
    """`events` as the store would hand them out: versions 1, 2, ... at positions 101, 102, ..."""
    return [
        Envelope(
            event_id=uuid7(),
            stream_id=MODEL_ID,
            stream_version=number,
            position=100 + number,
            type=event.type,
            recorded_at=AT,
            actor=actor,
            payload=event.model_dump(mode="json", exclude={"type"}),
            prev_hash=GENESIS_HASH,
            hash="0" * 64,
        )
        for number, event in enumerate(events, start=1)
    ]


def promotions_of(envelopes: list[Envelope]) -> list[tuple[Envelope, ModelState]]:
    """Each envelope with the model's state right after it."""
    states = []
    state: ModelState | None = None
    for envelope in envelopes:
        state = fold(state, [envelope])
        assert state is not None
        states.append((envelope, state))
    return states


def all_promotions(envelopes: list[Envelope]) -> list[Promotion]:
    return [p for e, s in promotions_of(envelopes) for p in promotions_for(e, s)]


def history_with_artifact() -> list[Event]:
    registered, first, second = model_with_versions(2)
    with_digest = first.model_copy(update={"digest": DIGEST})
    return [registered, with_digest, second]


def test_a_stage_change_is_one_promotion_carrying_the_versions_artifact() -> None:
    envelopes = stored(
        *history_with_artifact(),
        moved(1, Stage.NONE, Stage.STAGING),
        moved(1, Stage.STAGING, Stage.PRODUCTION),
    )
    promotions = all_promotions(envelopes)
    assert len(promotions) == 2
    production = promotions[1]
    assert production.model == NAME
    assert production.version == "1"
    assert production.kind == "stage"
    assert (production.from_stage, production.to_stage) == (Stage.STAGING, Stage.PRODUCTION)
    assert production.alias is None
    assert production.artifact.uri == f"s3://models/{NAME}/1"
    assert production.artifact.digest == DIGEST
    assert production.actor == "alice"
    assert production.approvals == []
    assert production.position == envelopes[-1].position
    assert production.occurred_at == AT


def test_archive_existing_makes_a_promotion_for_each_version_moved_aside() -> None:
    past = [*history_with_artifact(), moved(1, Stage.NONE, Stage.PRODUCTION)]
    state = fold(None, stored(*past))
    decided = when(
        TransitionStage(name=NAME, version=2, stage="Production", archive_existing=True), state
    )
    promotions = all_promotions(stored(*past, *decided))[1:]
    assert [(p.version, p.from_stage, p.to_stage) for p in promotions] == [
        ("2", Stage.NONE, Stage.PRODUCTION),
        ("1", Stage.PRODUCTION, Stage.ARCHIVED),
    ]
    assert promotions[1].artifact.digest == DIGEST
    assert len({p.message_id for p in promotions}) == 2


def test_an_alias_move_carries_the_versions_current_stage() -> None:
    envelopes = stored(
        *history_with_artifact(),
        moved(2, Stage.NONE, Stage.STAGING),
        AliasSet(alias="champion", version=2),
        AliasSet(alias="champion", version=1, previous_version=2),
    )
    first, second = all_promotions(envelopes)[1:]
    assert (first.kind, first.alias, first.version) == ("alias", "champion", "2")
    assert first.from_stage == first.to_stage == Stage.STAGING
    assert (second.version, second.from_stage, second.to_stage) == ("1", Stage.NONE, Stage.NONE)
    assert second.artifact.digest == DIGEST


def test_other_events_make_no_promotion() -> None:
    envelopes = stored(
        *history_with_artifact(),
        VersionTagSet(version=1, key="k", value="v"),
        ModelRenamed(old_name=NAME, new_name="renamed"),
    )
    assert all_promotions(envelopes) == []


def test_removing_an_alias_announces_it_with_the_version_it_pointed_to() -> None:
    envelopes = stored(
        *history_with_artifact(),
        moved(1, Stage.NONE, Stage.STAGING),
        AliasSet(alias="champion", version=1),
        AliasDeleted(alias="champion", version=1),
    )
    moved_in, removed = all_promotions(envelopes)[1:]
    assert (moved_in.kind, removed.kind) == ("alias", "alias_removed")
    assert (removed.alias, removed.version) == ("champion", "1")
    assert removed.from_stage == removed.to_stage == Stage.STAGING
    assert removed.artifact.digest == DIGEST
    assert (removed.authorization, removed.rollback) == (None, None)
    assert promotion_message(removed)[2]["kind"] == "alias_removed"


def test_the_promotion_names_the_model_as_it_was_called_then() -> None:
    envelopes = stored(
        *history_with_artifact(),
        moved(1, Stage.NONE, Stage.STAGING),
        ModelRenamed(old_name=NAME, new_name="renamed"),
        moved(1, Stage.STAGING, Stage.PRODUCTION),
    )
    assert [p.model for p in all_promotions(envelopes)] == [NAME, "renamed"]


def test_the_message_id_depends_on_the_event_alone() -> None:
    envelopes = stored(*history_with_artifact(), moved(1, Stage.NONE, Stage.STAGING))
    envelope, state = promotions_of(envelopes)[-1]
    again = promotions_for(envelope, state)[0]
    assert again == promotions_for(envelope, state)[0]
    assert again.message_id == promotion_message_id(envelope.event_id)
    other = envelope.model_copy(update={"event_id": uuid7()})
    assert promotions_for(other, state)[0].message_id != again.message_id


def test_the_message_is_the_documented_json_keyed_by_model_name() -> None:
    envelopes = stored(*history_with_artifact(), moved(1, Stage.NONE, Stage.PRODUCTION))
    promotion = all_promotions(envelopes)[0]
    key, value, headers = promotion_message(promotion)
    assert key == NAME.encode()
    assert headers == {
        "message-id": str(promotion.message_id),
        "kind": "stage",
        "position": str(envelopes[-1].position),
    }
    assert loads(value) == {
        "message_id": str(promotion.message_id),
        "model": NAME,
        "version": "1",
        "kind": "stage",
        "from_stage": "None",
        "to_stage": "Production",
        "alias": None,
        "artifact": {"uri": f"s3://models/{NAME}/1", "digest": DIGEST},
        "actor": "alice",
        "approvals": [],
        "authorization": None,
        "rollback": None,
        "position": envelopes[-1].position,
        "occurred_at": "2024-05-01T12:00:00Z",
    }
    assert UUID(loads(value)["message_id"]).version == 5


def test_an_event_not_yet_stored_makes_no_promotion() -> None:
    envelopes = stored(*history_with_artifact(), moved(1, Stage.NONE, Stage.STAGING))
    envelope, state = promotions_of(envelopes)[-1]
    with pytest.raises(ValueError, match="no position"):
        promotions_for(envelope.model_copy(update={"position": None}), state)


def test_a_governed_promotion_carries_what_allowed_it() -> None:
    authorization = TransitionAuthorization(
        request_id="r-1",
        requested_by="rita",
        policy_version=4,
        approvals_required=1,
        approver_role=Role.APPROVER,
        gates=[GateCheck(gate="evaluations.fairness", passed=True, seen="e-9")],
        approvals=[ApprovalRecord(by="ann", at=AT)],
        scope="high-risk",
    )
    move = moved(1, Stage.NONE, Stage.PRODUCTION).model_copy(
        update={"authorization": authorization}
    )
    registered, first, second = history_with_artifact()
    requested = TransitionRequested(
        request_id="r-1", version=1, stage=Stage.PRODUCTION, requested_by="rita"
    )

    [promotion] = all_promotions(stored(registered, first, second, requested, move))

    assert promotion.authorization == authorization
    assert [a.actor for a in promotion.approvals] == ["ann"]


def test_a_rollback_promotion_says_why_and_from_which_version() -> None:
    past = [
        *history_with_artifact(),
        moved(1, Stage.NONE, Stage.PRODUCTION),
        moved(2, Stage.NONE, Stage.PRODUCTION),
        moved(1, Stage.PRODUCTION, Stage.ARCHIVED),
    ]
    command = RequestRollback(name=NAME, stage="Production", reason="bad canary")
    decided = decide(command, fold(None, stored(*past)), "", DecisionContext(new_request_id="r-9"))

    back, aside = all_promotions(stored(*past, *decided))[3:]

    expected = Rollback(reason="bad canary", from_version=2, to_version=1)
    assert (back.version, back.to_stage, back.rollback) == ("1", Stage.PRODUCTION, expected)
    assert back.authorization is not None and back.authorization.rollback == expected
    assert (aside.version, aside.to_stage, aside.rollback) == ("2", Stage.ARCHIVED, None)
    assert back.artifact.digest == DIGEST
    assert loads(promotion_message(back)[1])["rollback"] == {
        "reason": "bad canary",
        "from_version": 2,
        "to_version": 1,
    }
