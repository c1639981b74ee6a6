"""Rollbacks, given/when/then: a stage or alias goes back to its previous holder (or an earlier
one named) as one governed transition, under the document's rollback rule when it has one, and
refused when there is nothing to go back to."""

from __future__ import annotations

from datetime import timedelta

import pytest
from scenario import AT, NAME, given, model_with_versions, moved

from registrar.contracts.commands import (
    ApproveTransition,
    Command,
    DeleteVersion,
    RequestRollback,
    SetAlias,
    TransitionStage,
)
from registrar.contracts.events import (
    AliasSet,
    Event,
    RiskAssessed,
    StageChanged,
    TransitionApproved,
    TransitionRequested,
)
from registrar.contracts.policies import (
    PolicyApplied,
    PolicyDocument,
    PolicyRule,
    Rollback,
    RollbackRules,
    Scope,
    ScopeMatch,
)
from registrar.contracts.values import Role, Stage
from registrar.domain.approvals import DecisionContext
from registrar.domain.decider import decide
from registrar.domain.errors import Conflict, Forbidden, Invalid
from registrar.domain.policies import NO_POLICIES, PolicySet, document_problems, evolve_policies
from registrar.domain.rollbacks import earlier_holders
from registrar.domain.state import ModelState, evolve, state_from_json, state_to_json

NONE, STAGING, PRODUCTION, ARCHIVED = Stage.NONE, Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED
REQUEST = "rollback-1"
LATER = AT + timedelta(hours=1)
STRICT = PolicyRule(approvals=2, gates=["metrics.auc >= 0.99"])
ONCALL = PolicyRule(approvals=1, approver_role=Role.CONTRIBUTOR)


def policies(**document: object) -> PolicySet:
    return evolve_policies(NO_POLICIES, PolicyApplied(version=3, **document))  # type: ignore[arg-type]


def by(
    actor: str, role: Role = Role.APPROVER, policy: PolicySet = NO_POLICIES, request: str = REQUEST
) -> DecisionContext:
    return DecisionContext(
        actor=actor, role=role, policies=policy, new_request_id=request, now=LATER
    )


def when(command: Command, state: ModelState | None, context: DecisionContext) -> list[Event]:
    return decide(command, state, "", context)


def then(state: ModelState | None, events: list[Event]) -> ModelState:
    for event in events:
        state = evolve(state, event, LATER)
    assert state is not None
    return state


def rollback(**fields: object) -> RequestRollback:
    fields.setdefault("reason", "error rate doubled")
    if "alias" not in fields:
        fields.setdefault("stage", "Production")
    return RequestRollback(name=NAME, **fields)  # type: ignore[arg-type]


def promoted_in_turn(count: int) -> ModelState:
    """Versions 1..count moved to Production one after another, each archiving the one before."""
    state = given(*model_with_versions(count))
    for number in range(1, count + 1):
        move = TransitionStage(name=NAME, version=number, stage="Production", archive_existing=True)
        state = then(state, when(move, state, by("alice")))
    assert state is not None
    return state


# --- the previous holder ------------------------------------------------------------------------


def test_a_rollback_brings_the_previous_holder_back_and_archives_the_current_one() -> None:
    state = promoted_in_turn(2)

    requested, back, aside = when(rollback(), state, by("olga"))

    assert isinstance(requested, TransitionRequested)
    assert requested.rollback == Rollback(reason="error rate doubled", from_version=2, to_version=1)
    assert (requested.version, requested.stage, requested.requested_by) == (1, PRODUCTION, "olga")
    assert isinstance(back, StageChanged) and back.authorization is not None
    assert (back.version, back.from_stage, back.to_stage) == (1, ARCHIVED, PRODUCTION)
    assert back.authorization.rollback == requested.rollback
    assert back.authorization.request_id == REQUEST
    assert aside == StageChanged(
        version=2,
        from_stage=PRODUCTION,
        to_stage=ARCHIVED,
        reason="archived_by",
        archived_by_version=1,
    )
    after = then(state, [requested, back, aside])
    assert after.requests[REQUEST].state == "applied"
    assert after.versions[1].stage == PRODUCTION and after.versions[2].stage == ARCHIVED


def test_a_second_rollback_goes_further_back_not_forward_again() -> None:
    state = promoted_in_turn(3)
    state = then(state, when(rollback(), state, by("olga")))
    assert state.versions[2].stage == PRODUCTION

    again = when(rollback(reason="still failing"), state, by("olga", request="rollback-2"))

    assert again[0].rollback.to_version == 1  # type: ignore[union-attr]
    assert earlier_holders(then(state, again), PRODUCTION, None) == []


def test_a_named_earlier_holder_is_rolled_back_to() -> None:
    state = promoted_in_turn(3)

    requested, back, _ = when(rollback(to_version=1), state, by("olga"))

    assert requested.rollback.from_version == 3  # type: ignore[union-attr]
    assert (back.version, back.to_stage) == (1, PRODUCTION)  # type: ignore[union-attr]


def test_a_version_that_never_held_the_stage_before_is_refused() -> None:
    state = given(*model_with_versions(3))
    state = then(state, [moved(1, NONE, PRODUCTION), moved(1, PRODUCTION, ARCHIVED)])
    state = then(state, [moved(3, NONE, PRODUCTION)])

    with pytest.raises(Conflict, match=r"version 2 .* is not a live earlier holder.*: 1\)"):
        when(rollback(to_version=2), state, by("olga"))
    with pytest.raises(Conflict, match="version 3 .* is not a live earlier holder"):
        when(rollback(to_version=3), state, by("olga"))


def test_a_deleted_earlier_holder_is_passed_over() -> None:
    state = promoted_in_turn(3)
    state = then(state, when(DeleteVersion(name=NAME, version=2), state, by("alice")))

    requested = when(rollback(), state, by("olga"))[0]

    assert requested.rollback.to_version == 1  # type: ignore[union-attr]
    with pytest.raises(Conflict, match="version 2 .* is not a live earlier holder"):
        when(rollback(to_version=2), state, by("olga"))


def test_without_a_previous_holder_there_is_nothing_to_roll_back_to() -> None:
    first = promoted_in_turn(1)
    with pytest.raises(
        Conflict, match="no previous holder to roll back to: version 1 is the first"
    ):
        when(rollback(), first, by("olga"))
    nobody = given(*model_with_versions(1))
    with pytest.raises(Conflict, match="no version of model .* holds stage Production"):
        when(rollback(), nobody, by("olga"))
    with pytest.raises(Conflict, match="holds alias 'champion'"):
        when(rollback(alias="champion"), nobody, by("olga"))


def test_only_staging_and_production_are_rolled_back() -> None:
    with pytest.raises(Invalid, match="only Staging and Production are rolled back"):
        when(rollback(stage="Archived"), promoted_in_turn(2), by("olga"))


def test_a_stage_shared_by_the_earlier_holder_is_only_left_by_the_current_one() -> None:
    state = given(*model_with_versions(2), moved(1, NONE, PRODUCTION), moved(2, NONE, PRODUCTION))

    requested, leaves = when(rollback(), state, by("olga"))

    assert isinstance(leaves, StageChanged) and leaves.authorization is not None
    assert (leaves.version, leaves.from_stage, leaves.to_stage) == (2, PRODUCTION, ARCHIVED)
    assert leaves.authorization.rollback == requested.rollback  # type: ignore[union-attr]
    after = then(state, [requested, leaves])
    assert [after.versions[n].stage for n in (1, 2)] == [PRODUCTION, ARCHIVED]
    assert earlier_holders(after, PRODUCTION, None) == []


def test_an_alias_goes_back_to_the_version_it_pointed_to_before() -> None:
    state = given(*model_with_versions(2))
    for number in (1, 2):
        state = then(
            state, when(SetAlias(name=NAME, alias="champion", version=number), state, by("a"))
        )

    requested, back = when(rollback(alias="champion"), state, by("olga"))

    assert back == AliasSet(
        alias="champion",
        version=1,
        previous_version=2,
        authorization=back.authorization,  # type: ignore[union-attr]
    )
    assert back.authorization.rollback.from_version == 2  # type: ignore[union-attr]
    assert then(state, [requested, back]).aliases == {"champion": 1}


def test_the_snapshot_keeps_the_holders() -> None:
    state = promoted_in_turn(3)
    assert state_from_json(state_to_json(state)).stage_holders == {PRODUCTION: (1, 2, 3)}


# --- governed -----------------------------------------------------------------------------------


def test_the_rollback_rule_governs_a_rollback_in_place_of_the_stages_rule() -> None:
    policy = policies(
        stages={PRODUCTION: STRICT}, rollbacks=RollbackRules(stages={PRODUCTION: ONCALL})
    )
    state = promoted_in_turn(2)

    (requested,) = when(rollback(), state, by("olga", Role.CONTRIBUTOR, policy))
    pending = then(state, [requested])
    approval = ApproveTransition(name=NAME, request_id=REQUEST, comment="on call, agreed")
    with pytest.raises(Forbidden, match="may not approve it"):
        when(approval, pending, by("olga", Role.CONTRIBUTOR, policy))
    approved, back, _ = when(approval, pending, by("omar", Role.CONTRIBUTOR, policy))

    assert approved == TransitionApproved(request_id=REQUEST, by="omar", comment="on call, agreed")
    allowed = back.authorization  # type: ignore[union-attr]
    assert allowed is not None and allowed.rollback_rule
    assert (allowed.approvals_required, allowed.approver_role) == (1, Role.CONTRIBUTOR)
    assert allowed.gates == [] and [a.by for a in allowed.approvals] == ["omar"]
    assert allowed.policy_version == 3


def test_without_a_rollback_rule_the_stages_own_rule_governs() -> None:
    policy = policies(stages={PRODUCTION: STRICT})
    state = promoted_in_turn(2)

    (requested,) = when(rollback(), state, by("olga", Role.CONTRIBUTOR, policy))
    approved = when(
        ApproveTransition(name=NAME, request_id=REQUEST),
        then(state, [requested]),
        by("ann", Role.APPROVER, policy),
    )

    assert [type(e).__name__ for e in approved] == ["TransitionApproved"]  # one more, and a gate


def test_the_rollback_rule_holds_for_every_model_whatever_scope_matches() -> None:
    policy = policies(
        scopes=[Scope(name="all", match=ScopeMatch(names=["*"]), stages={PRODUCTION: STRICT})],
        rollbacks=RollbackRules(stages={PRODUCTION: PolicyRule()}),
    )
    events = when(rollback(), promoted_in_turn(2), by("olga", Role.CONTRIBUTOR, policy))
    assert events[1].authorization.rollback_rule  # type: ignore[union-attr]


def test_an_ungoverned_rollback_needs_the_role_a_direct_move_needs() -> None:
    with pytest.raises(Forbidden, match="needs the approver role"):
        when(rollback(), promoted_in_turn(2), by("carl", Role.CONTRIBUTOR))


def test_a_rollback_whose_target_changed_hands_since_is_refused_when_approved() -> None:
    policy = policies(rollbacks=RollbackRules(stages={PRODUCTION: ONCALL}))
    state = promoted_in_turn(3)
    (requested,) = when(rollback(), state, by("olga", Role.CONTRIBUTOR, policy))
    state = then(state, [requested, moved(1, ARCHIVED, PRODUCTION)])

    with pytest.raises(Conflict, match="made while version 3 held stage Production, and version 1"):
        when(ApproveTransition(name=NAME, request_id=REQUEST), state, by("omar", policy=policy))


def test_a_model_whose_risk_tier_blocks_promotion_is_not_rolled_back() -> None:
    state = then(
        promoted_in_turn(2),
        [RiskAssessed(tier="unacceptable", method="direct", assessed_by="ann", policy_version=3)],
    )
    with pytest.raises(Conflict, match="blocks every promotion"):
        when(rollback(), state, by("olga", policy=policies()))


def test_the_document_checks_its_rollback_rules() -> None:
    document = PolicyDocument(
        rollbacks=RollbackRules(
            stages={ARCHIVED: PolicyRule()}, aliases={"champion": PolicyRule(gates=["nope"])}
        )
    )
    problems = document_problems(document)
    assert "rollbacks.stages.Archived: only Staging and Production are rolled back" in problems
    assert any(p.startswith("rollbacks.aliases.champion.gates[0]") for p in problems)


def test_a_rollback_needs_a_reason_and_one_target() -> None:
    with pytest.raises(ValueError, match="say why"):
        rollback(reason="  ")
    with pytest.raises(ValueError, match="exactly one target"):
        RequestRollback(name=NAME, reason="r")
