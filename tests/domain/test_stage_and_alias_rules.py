"""Rules about where a version stands: stage transitions (with archive-existing) and aliases,
which each point at exactly one live version."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError
from scenario import NAME, given, model_with_versions, moved, when

from registrar.contracts.commands import DeleteAlias, SetAlias, TransitionStage
from registrar.contracts.events import AliasDeleted, AliasSet, StageChanged, VersionDeleted
from registrar.contracts.values import MAX_ALIAS_LENGTH, Stage
from registrar.domain.errors import Invalid, NotFound, VersionNotFound

NONE, STAGING, PRODUCTION, ARCHIVED = Stage.NONE, Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED


def archived_by(winner: int, loser: int, from_stage: Stage = PRODUCTION) -> StageChanged:
    """The event that moves `loser` aside when `winner` takes its stage with archive-existing."""
    return StageChanged(
        version=loser,
        from_stage=from_stage,
        to_stage=ARCHIVED,
        reason="archived_by",
        archived_by_version=winner,
    )


# --- stages ----------------------------------------------------------------------------------


def test_a_transition_records_the_move_as_requested() -> None:
    state = given(*model_with_versions(1))

    events = when(TransitionStage(name=NAME, version=1, stage="Staging"), state)

    assert events == [
        StageChanged(version=1, from_stage=NONE, to_stage=STAGING, reason="requested")
    ]


def test_a_transition_to_the_current_stage_changes_nothing() -> None:
    state = given(*model_with_versions(1), moved(1, NONE, PRODUCTION))

    assert when(TransitionStage(name=NAME, version=1, stage="Production"), state) == []


def test_without_archive_existing_other_holders_of_the_stage_stay() -> None:
    state = given(*model_with_versions(3), moved(1, NONE, PRODUCTION), moved(2, NONE, PRODUCTION))

    events = when(TransitionStage(name=NAME, version=3, stage="Production"), state)

    assert events == [moved(3, NONE, PRODUCTION)]


def test_archive_existing_archives_every_other_live_holder_in_version_order() -> None:
    state = given(
        *model_with_versions(6),
        moved(2, NONE, PRODUCTION),
        moved(1, NONE, PRODUCTION),
        moved(4, NONE, STAGING),
        moved(5, NONE, PRODUCTION),
        VersionDeleted(version=5),
        moved(6, NONE, ARCHIVED),
    )

    events = when(
        TransitionStage(name=NAME, version=3, stage="Production", archive_existing=True), state
    )

    assert events == [
        moved(3, NONE, PRODUCTION),
        archived_by(3, 1),
        archived_by(3, 2),
    ]


def test_archive_existing_follows_version_order_not_the_order_the_state_holds_them() -> None:
    state = given(*model_with_versions(4), moved(2, NONE, PRODUCTION), moved(4, NONE, PRODUCTION))
    assert state is not None
    shuffled = replace(state, versions=dict(reversed(list(state.versions.items()))))

    events = when(
        TransitionStage(name=NAME, version=1, stage="Production", archive_existing=True), shuffled
    )

    assert events == [moved(1, NONE, PRODUCTION), archived_by(1, 2), archived_by(1, 4)]


def test_after_archive_existing_only_the_new_holder_is_in_the_stage() -> None:
    past = [*model_with_versions(3), moved(1, NONE, PRODUCTION), moved(2, NONE, STAGING)]
    events = when(
        TransitionStage(name=NAME, version=3, stage="Production", archive_existing=True),
        given(*past),
    )

    after = given(*past, *events)
    assert after is not None

    assert {n: v.stage for n, v in after.versions.items()} == {
        1: ARCHIVED,
        2: STAGING,
        3: PRODUCTION,
    }


def test_archive_existing_to_staging_archives_the_other_staging_holders() -> None:
    state = given(*model_with_versions(3), moved(1, NONE, STAGING), moved(2, NONE, PRODUCTION))

    events = when(
        TransitionStage(name=NAME, version=3, stage="Staging", archive_existing=True), state
    )

    assert events == [moved(3, NONE, STAGING), archived_by(3, 1, from_stage=STAGING)]


def test_archive_existing_from_the_current_stage_only_archives_the_others() -> None:
    state = given(*model_with_versions(3), moved(1, NONE, PRODUCTION), moved(3, NONE, PRODUCTION))

    events = when(
        TransitionStage(name=NAME, version=3, stage="Production", archive_existing=True), state
    )

    assert events == [archived_by(3, 1)]


def test_archive_existing_moving_a_holder_out_of_its_stage_archives_the_targets_holders() -> None:
    state = given(*model_with_versions(2), moved(1, NONE, STAGING), moved(2, NONE, PRODUCTION))

    events = when(
        TransitionStage(name=NAME, version=2, stage="Staging", archive_existing=True), state
    )

    assert events == [moved(2, PRODUCTION, STAGING), archived_by(2, 1, from_stage=STAGING)]


@pytest.mark.parametrize("target", ["None", "Archived"])
def test_archive_existing_with_a_target_other_than_staging_or_production_is_invalid(
    target: str,
) -> None:
    state = given(*model_with_versions(2), moved(1, NONE, PRODUCTION))

    with pytest.raises(Invalid, match=f"archive_existing is only valid .* not {target}"):
        when(TransitionStage(name=NAME, version=2, stage=target, archive_existing=True), state)


def test_a_deleted_version_cannot_change_stage_it_is_not_found_as_in_mlflow() -> None:
    state = given(*model_with_versions(2), moved(2, NONE, STAGING), VersionDeleted(version=2))

    with pytest.raises(VersionNotFound, match="version 2 of model .* was deleted"):
        when(TransitionStage(name=NAME, version=2, stage="Production"), state)


@pytest.mark.parametrize(
    ("given_stage", "stage"),
    [
        ("production", PRODUCTION),
        ("PRODUCTION", PRODUCTION),
        ("pRoDuCtIoN", PRODUCTION),
        ("Production", PRODUCTION),
        ("staging", STAGING),
        ("none", NONE),
        ("NONE", NONE),
        ("archived", ARCHIVED),
    ],
)
def test_stage_names_are_case_insensitive_on_input(given_stage: str, stage: Stage) -> None:
    command = TransitionStage(name=NAME, version=1, stage=given_stage)

    assert command.stage is stage


@pytest.mark.parametrize("stage", ["Prod", "", "Deployed", "production "])
def test_an_unknown_stage_is_refused_at_construction(stage: str) -> None:
    with pytest.raises(ValidationError) as refused:
        TransitionStage(name=NAME, version=1, stage=stage)

    assert [complaint["loc"][0] for complaint in refused.value.errors()] == ["stage"]
    assert "unknown stage" in str(refused.value)


def test_a_lower_case_stage_drives_the_same_decision() -> None:
    state = given(*model_with_versions(1))

    assert when(TransitionStage(name=NAME, version=1, stage="production"), state) == [
        moved(1, NONE, PRODUCTION)
    ]


# --- alias names -----------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ["latest", "LATEST", "Latest", "v1", "V12", "v007"])
def test_a_reserved_alias_is_refused(alias: str) -> None:
    with pytest.raises(ValidationError, match="reserved") as refused:
        SetAlias(name=NAME, alias=alias, version=1)

    assert [complaint["loc"][0] for complaint in refused.value.errors()] == ["alias"]


@pytest.mark.parametrize(
    "alias",
    ["", "has space", "dotted.alias", "a/b", "a:b", "émoji🙂", "champion\n", "a" * 256],
)
def test_an_alias_with_invalid_characters_or_length_is_refused(alias: str) -> None:
    with pytest.raises(ValidationError) as refused:
        SetAlias(name=NAME, alias=alias, version=1)

    assert [complaint["loc"][0] for complaint in refused.value.errors()] == ["alias"]


@pytest.mark.parametrize(
    "alias", ["v1x", "champion", "x-v1", "version1", "latest-good", "_", "a" * MAX_ALIAS_LENGTH]
)
def test_an_ordinary_alias_is_accepted(alias: str) -> None:
    assert SetAlias(name=NAME, alias=alias, version=1).alias == alias


def test_deleting_a_reserved_alias_is_refused_at_construction() -> None:
    with pytest.raises(ValidationError, match="reserved"):
        DeleteAlias(name=NAME, alias="latest")


# --- alias holders ---------------------------------------------------------------------------


def test_setting_a_free_alias_records_it_with_no_previous_holder() -> None:
    state = given(*model_with_versions(1))

    assert when(SetAlias(name=NAME, alias="champion", version=1), state) == [
        AliasSet(alias="champion", version=1, previous_version=None)
    ]


def test_setting_an_alias_held_by_another_version_moves_it() -> None:
    past = [*model_with_versions(2), AliasSet(alias="champion", version=1)]

    events = when(SetAlias(name=NAME, alias="champion", version=2), given(*past))

    assert events == [AliasSet(alias="champion", version=2, previous_version=1)]
    after = given(*past, *events)
    assert after is not None
    assert after.aliases == {"champion": 2}
    assert after.aliases_of(1) == []
    assert after.aliases_of(2) == ["champion"]


def test_setting_an_alias_on_its_current_holder_changes_nothing() -> None:
    state = given(
        *model_with_versions(2),
        AliasSet(alias="champion", version=1),
        AliasSet(alias="champion", version=2, previous_version=1),
    )

    assert when(SetAlias(name=NAME, alias="champion", version=2), state) == []


def test_aliases_are_case_sensitive_names() -> None:
    state = given(*model_with_versions(2), AliasSet(alias="champion", version=1))

    assert when(SetAlias(name=NAME, alias="Champion", version=2), state) == [
        AliasSet(alias="Champion", version=2, previous_version=None)
    ]


def test_a_deleted_version_cannot_take_an_alias() -> None:
    state = given(*model_with_versions(2), VersionDeleted(version=2))

    with pytest.raises(NotFound, match="version 2 of model .* was deleted"):
        when(SetAlias(name=NAME, alias="champion", version=2), state)


def test_deleting_an_alias_records_its_holder() -> None:
    state = given(*model_with_versions(2), AliasSet(alias="champion", version=2))

    assert when(DeleteAlias(name=NAME, alias="champion"), state) == [
        AliasDeleted(alias="champion", version=2)
    ]


def test_deleting_an_unknown_alias_is_not_found() -> None:
    state = given(*model_with_versions(1), AliasSet(alias="champion", version=1))

    with pytest.raises(NotFound, match=f"model '{NAME}' has no alias 'challenger'"):
        when(DeleteAlias(name=NAME, alias="challenger"), state)


def test_a_deleted_alias_is_unknown_afterwards() -> None:
    state = given(
        *model_with_versions(1),
        AliasSet(alias="champion", version=1),
        AliasDeleted(alias="champion", version=1),
    )

    with pytest.raises(NotFound, match="no alias 'champion'"):
        when(DeleteAlias(name=NAME, alias="champion"), state)
