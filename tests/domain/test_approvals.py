"""The approval workflow, given/when/then: requests, approvals from distinct people holding the
policy's role, gates checked at the moment of transition, stale requests, reject and cancel,
and direct moves that a policy turns into requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from scenario import AT, NAME, given, model_with_versions, moved

from registrar.contracts.commands import (
    ApproveTransition,
    CancelTransition,
    Command,
    RecordMetrics,
    RejectTransition,
    RequestTransition,
    SetAlias,
    TransitionStage,
    UpdateModelCard,
)
from registrar.contracts.events import (
    AliasSet,
    Event,
    MetricsRecorded,
    ModelCardUpdated,
    StageChanged,
    TransitionApproved,
    TransitionCancelled,
    TransitionRejected,
    TransitionRequested,
    TransitionRequestStale,
    VersionRegistered,
)
from registrar.contracts.model_card import ModelCardPatch
from registrar.contracts.policies import (
    ApprovalRecord,
    GateCheck,
    PolicyApplied,
    PolicyRule,
    TransitionAuthorization,
)
from registrar.contracts.values import Role, Stage
from registrar.domain.approvals import DecisionContext, refuse_if_held, standing
from registrar.domain.decider import decide
from registrar.domain.errors import Conflict, Forbidden, Invalid
from registrar.domain.policies import NO_POLICIES, PolicySet, evolve_policies
from registrar.domain.state import ModelState

NONE, STAGING, PRODUCTION, ARCHIVED = Stage.NONE, Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED
REQUEST = "req-1"
LATER = AT + timedelta(hours=1)

POLICY = evolve_policies(
    NO_POLICIES,
    PolicyApplied(
        version=7,
        stages={
            PRODUCTION: PolicyRule(
                approvals=2,
                approver_role=Role.APPROVER,
                gates=["metrics.auc >= 0.85", "lineage.datasets >= 0"],
            )
        },
        aliases={"champion": PolicyRule(approvals=1, approver_role=Role.ADMIN)},
    ),
)


def by(actor: str, role: Role = Role.APPROVER, policies: PolicySet = POLICY) -> DecisionContext:
    return DecisionContext(
        actor=actor, role=role, policies=policies, new_request_id=REQUEST, now=LATER
    )


def when(command: Command, state: ModelState | None, context: DecisionContext) -> list[Event]:
    return decide(command, state, "", context)


def good_version(number: int = 1, auc: float = 0.9) -> VersionRegistered:
    return VersionRegistered(version=number, source=f"s3://m/{number}", metrics={"auc": auc})


def requested(version: int = 1, **fields: object) -> TransitionRequested:
    fields.setdefault("stage", PRODUCTION)
    fields.setdefault("requested_by", "rita")
    return TransitionRequested(request_id=REQUEST, version=version, **fields)


def approved(who: str, comment: str = "") -> TransitionApproved:
    return TransitionApproved(request_id=REQUEST, by=who, comment=comment)


def approve(comment: str = "") -> ApproveTransition:
    return ApproveTransition(name=NAME, request_id=REQUEST, comment=comment)


def pending_request(*more: Event, auc: float = 0.9) -> ModelState:
    state = given(*model_with_versions(0), good_version(1, auc), requested(), *more)
    assert state is not None
    return state


# --- requesting --------------------------------------------------------------------------------


def test_a_request_to_a_governed_stage_is_recorded_pending_and_moves_nothing() -> None:
    state = given(*model_with_versions(0), good_version())
    command = RequestTransition(name=NAME, version=1, stage="Production", comment="ship it")

    events = when(command, state, by("rita", Role.CONTRIBUTOR))

    assert events == [requested(comment="ship it")]


def test_a_request_to_an_ungoverned_stage_applies_at_once_recording_the_policy_version() -> None:
    state = given(*model_with_versions(0), good_version())

    events = when(RequestTransition(name=NAME, version=1, stage="Staging"), state, by("rita"))

    authorization = TransitionAuthorization(
        request_id=REQUEST,
        requested_by="rita",
        policy_version=7,
        approvals_required=0,
        approver_role=Role.APPROVER,
    )
    assert events == [
        requested(stage=STAGING),
        StageChanged(version=1, from_stage=NONE, to_stage=STAGING, authorization=authorization),
    ]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.CONTRIBUTOR])
@pytest.mark.parametrize(
    "target", [{"stage": "Staging"}, {"alias": "canary"}], ids=["stage", "alias"]
)
def test_a_request_that_would_apply_at_once_needs_the_role_of_a_direct_move(
    role: Role, target: dict[str, str]
) -> None:
    state = given(*model_with_versions(0), good_version())
    command = RequestTransition(name=NAME, version=1, **target)

    with pytest.raises(Forbidden, match="no policy governs .* needs the approver role"):
        when(command, state, by("rita", role))


def test_a_contributor_may_still_request_a_governed_move() -> None:
    state = given(*model_with_versions(0), good_version())
    command = RequestTransition(name=NAME, version=1, alias="champion")

    events = when(command, state, by("rita", Role.CONTRIBUTOR))

    assert [type(e) for e in events] == [TransitionRequested]


def test_a_pending_request_whose_policy_was_lifted_is_not_applied_by_a_contributor() -> None:
    command = RequestTransition(name=NAME, version=1, stage="Production")

    with pytest.raises(Forbidden):
        when(command, pending_request(), by("rita", Role.CONTRIBUTOR, NO_POLICIES))


def test_a_direct_move_to_an_ungoverned_stage_applies_as_before() -> None:
    state = given(*model_with_versions(0), good_version())

    events = when(TransitionStage(name=NAME, version=1, stage="Staging"), state, by("rita"))

    assert events == [StageChanged(version=1, from_stage=NONE, to_stage=STAGING)]


def test_a_direct_move_to_a_governed_stage_becomes_a_request_and_is_refused_naming_it() -> None:
    state = given(*model_with_versions(0), good_version(auc=0.8))
    move = TransitionStage(name=NAME, version=1, stage="Production")

    events = when(move, state, by("rita"))

    assert events == [requested()]
    after = given(*model_with_versions(0), good_version(auc=0.8), *events)
    assert after is not None
    with pytest.raises(Conflict) as refused:
        refuse_if_held(move, after, by("rita"))
    assert f"transition request {REQUEST} is pending" in refused.value.message
    assert "2 more approvals from role approver (0 of 2)" in refused.value.message
    assert "gate metrics.auc >= 0.85 (saw 0.8)" in refused.value.message


def test_a_direct_move_again_while_the_request_is_pending_makes_no_second_request() -> None:
    state = pending_request()

    events = when(TransitionStage(name=NAME, version=1, stage="Production"), state, by("rita"))

    assert events == []


def test_a_direct_alias_move_of_a_protected_alias_becomes_a_request() -> None:
    state = given(*model_with_versions(0), good_version())

    events = when(SetAlias(name=NAME, alias="champion", version=1), state, by("rita"))

    assert events == [requested(stage=None, alias="champion")]


def test_requesting_the_stage_the_version_is_in_is_refused() -> None:
    state = given(*model_with_versions(0), good_version(), moved(1, NONE, PRODUCTION))

    with pytest.raises(Conflict, match="already in stage Production"):
        when(RequestTransition(name=NAME, version=1, stage="Production"), state, by("rita"))


# --- approving ---------------------------------------------------------------------------------


def test_approving_own_request_is_refused() -> None:
    with pytest.raises(Forbidden, match="rita requested transition req-1 and may not approve it"):
        when(approve(), pending_request(), by("rita"))


def test_own_approval_counts_when_the_policy_allows_self_approval() -> None:
    lenient = evolve_policies(
        NO_POLICIES,
        PolicyApplied(
            version=1, stages={PRODUCTION: PolicyRule(approvals=1, allow_self_approval=True)}
        ),
    )

    events = when(approve(), pending_request(), by("rita", policies=lenient))

    assert [type(e) for e in events] == [TransitionApproved, StageChanged]


def test_a_second_approval_by_the_same_person_is_refused() -> None:
    state = pending_request(approved("ann"))

    with pytest.raises(Conflict, match="ann has already approved transition request req-1"):
        when(approve(), state, by("ann"))


@pytest.mark.parametrize("role", [Role.VIEWER, Role.CONTRIBUTOR])
def test_an_approver_without_the_policys_role_is_refused(role: Role) -> None:
    with pytest.raises(Forbidden, match=f"needs the approver role; ann holds {role.value}"):
        when(approve(), pending_request(), by("ann", role))


def test_a_first_approval_is_recorded_and_the_request_stays_pending() -> None:
    state = pending_request()

    events = when(approve(comment="looks good"), state, by("ann"))

    assert events == [approved("ann", "looks good")]


def test_the_last_approval_applies_the_move_recording_policy_gates_and_approvals() -> None:
    state = pending_request(approved("ann", "ok"))

    events = when(approve(comment="fine"), state, by("bob", Role.ADMIN))

    authorization = TransitionAuthorization(
        request_id=REQUEST,
        requested_by="rita",
        policy_version=7,
        approvals_required=2,
        approver_role=Role.APPROVER,
        gates=[
            GateCheck(gate="metrics.auc >= 0.85", passed=True, seen=0.9),
            GateCheck(gate="lineage.datasets >= 0", passed=True, seen=0),
        ],
        approvals=[
            ApprovalRecord(by="ann", at=AT, comment="ok"),
            ApprovalRecord(by="bob", at=LATER, comment="fine"),
        ],
    )
    assert events == [
        approved("bob", "fine"),
        StageChanged(version=1, from_stage=NONE, to_stage=PRODUCTION, authorization=authorization),
    ]


def test_archive_existing_archives_the_previous_holders_in_the_same_decision() -> None:
    state = given(
        *model_with_versions(0),
        good_version(1),
        good_version(2),
        moved(1, NONE, PRODUCTION),
        requested(2, archive_existing=True),
        approved("ann"),
    )

    events = when(approve(), state, by("bob"))

    assert [type(e) for e in events] == [TransitionApproved, StageChanged, StageChanged]
    assert events[1].version == 2 and events[1].authorization is not None  # type: ignore[union-attr]
    assert events[2] == StageChanged(
        version=1,
        from_stage=PRODUCTION,
        to_stage=ARCHIVED,
        reason="archived_by",
        archived_by_version=2,
    )


def test_a_failing_gate_keeps_the_request_pending_and_names_the_gate_and_the_value() -> None:
    state = pending_request(approved("ann"), auc=0.8)

    events = when(approve(), state, by("bob"))

    assert events == [approved("bob")]
    after = given(
        *model_with_versions(0), good_version(1, 0.8), requested(), approved("ann"), *events
    )
    assert after is not None
    assert standing(after.requests[REQUEST], after, POLICY).missing == [
        "gate metrics.auc >= 0.85 (saw 0.8)"
    ]


def test_a_closed_request_cannot_be_approved() -> None:
    state = pending_request(TransitionRejected(request_id=REQUEST, by="bob"))

    with pytest.raises(Conflict, match="transition request req-1 is rejected"):
        when(approve(), state, by("ann"))


# --- stale requests ----------------------------------------------------------------------------


def test_new_metrics_make_an_approved_request_stale_and_drop_its_approvals() -> None:
    state = pending_request(approved("ann"))

    events = when(RecordMetrics(name=NAME, version=1, metrics={"auc": 0.95}), state, by("ci"))

    assert events == [
        MetricsRecorded(version=1, metrics={"auc": 0.95}),
        TransitionRequestStale(request_id=REQUEST, reason="metrics changed: auc", dropped=["ann"]),
    ]
    after = given(*model_with_versions(0), good_version(), requested(), approved("ann"), *events)
    assert after is not None
    assert after.requests[REQUEST].approvals == ()
    # ann's earlier approval no longer counts: she may approve again, and two are still needed.
    assert when(approve(), after, by("ann")) == [approved("ann")]


def test_a_model_card_change_makes_an_approved_request_stale() -> None:
    state = pending_request(approved("ann"))
    card = UpdateModelCard(name=NAME, version=1, card=ModelCardPatch(limitations="EU only"))

    events = when(card, state, by("ci"))

    assert events == [
        ModelCardUpdated(version=1, card={"limitations": "EU only"}),
        TransitionRequestStale(
            request_id=REQUEST, reason="model card changed: limitations", dropped=["ann"]
        ),
    ]


def test_changes_to_a_version_without_approved_requests_make_nothing_stale() -> None:
    state = pending_request()

    events = when(RecordMetrics(name=NAME, version=1, metrics={"auc": 0.95}), state, by("ci"))

    assert events == [MetricsRecorded(version=1, metrics={"auc": 0.95})]


# --- reject and cancel -------------------------------------------------------------------------


def test_an_approver_may_reject_with_a_comment() -> None:
    command = RejectTransition(name=NAME, request_id=REQUEST, comment="bias too high")

    events = when(command, pending_request(), by("bob"))

    assert events == [TransitionRejected(request_id=REQUEST, by="bob", comment="bias too high")]


def test_the_requester_cancels_rather_than_rejects() -> None:
    with pytest.raises(Invalid, match="cancel it rather than reject it"):
        when(RejectTransition(name=NAME, request_id=REQUEST), pending_request(), by("rita"))


def test_rejecting_needs_the_policys_approver_role() -> None:
    with pytest.raises(Forbidden, match="rejecting a move to stage Production needs"):
        when(
            RejectTransition(name=NAME, request_id=REQUEST),
            pending_request(),
            by("carl", Role.CONTRIBUTOR),
        )


def test_the_requester_may_cancel() -> None:
    command = CancelTransition(name=NAME, request_id=REQUEST, comment="wrong version")

    events = when(command, pending_request(), by("rita", Role.CONTRIBUTOR))

    assert events == [TransitionCancelled(request_id=REQUEST, by="rita", comment="wrong version")]


def test_an_admin_may_cancel_someone_elses_request() -> None:
    events = when(
        CancelTransition(name=NAME, request_id=REQUEST), pending_request(), by("ada", Role.ADMIN)
    )

    assert events == [TransitionCancelled(request_id=REQUEST, by="ada")]


def test_nobody_else_may_cancel() -> None:
    with pytest.raises(Forbidden, match="only rita \\(who requested it\\) or an admin"):
        when(CancelTransition(name=NAME, request_id=REQUEST), pending_request(), by("bob"))


# --- aliases -----------------------------------------------------------------------------------


def test_a_protected_alias_needs_its_policys_role() -> None:
    state = given(*model_with_versions(0), good_version(), requested(stage=None, alias="champion"))

    with pytest.raises(Forbidden, match="needs the admin role; bob holds approver"):
        when(approve(), state, by("bob", Role.APPROVER))


def test_an_approved_alias_request_moves_the_alias_recording_what_allowed_it() -> None:
    state = given(
        *model_with_versions(0),
        good_version(1),
        good_version(2),
        AliasSet(alias="champion", version=1),
        requested(2, stage=None, alias="champion"),
    )

    events = when(approve(), state, by("ada", Role.ADMIN))

    assert events[0] == approved("ada")
    move = events[1]
    assert isinstance(move, AliasSet)
    assert (move.alias, move.version, move.previous_version) == ("champion", 2, 1)
    assert move.authorization is not None
    assert move.authorization.approvals == [ApprovalRecord(by="ada", at=LATER)]
    after = given(
        *model_with_versions(0),
        good_version(1),
        good_version(2),
        AliasSet(alias="champion", version=1),
        requested(2, stage=None, alias="champion"),
        *events,
    )
    assert after is not None and after.aliases == {"champion": 2}
    assert after.requests[REQUEST].state == "applied"


def test_an_applied_request_is_marked_applied_in_the_state() -> None:
    events = when(approve(), pending_request(approved("ann")), by("bob"))

    after = given(*model_with_versions(0), good_version(), requested(), approved("ann"), *events)

    assert after is not None
    assert after.requests[REQUEST].state == "applied"
    assert after.versions[1].stage == PRODUCTION


def test_the_clock_of_the_context_dates_the_approval_that_completes_a_request() -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    context = DecisionContext(actor="bob", role=Role.APPROVER, policies=POLICY, now=at)

    events = when(approve(), pending_request(approved("ann")), context)

    move = events[1]
    assert isinstance(move, StageChanged) and move.authorization is not None
    assert [a.at for a in move.authorization.approvals] == [AT, at]
