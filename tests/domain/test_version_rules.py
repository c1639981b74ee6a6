"""Rules about a model's versions: gapless numbers never reused, lineage (parents), description,
tags, metrics, deletion, and refusals for versions that do not exist or were deleted."""

from __future__ import annotations

import pytest
from scenario import NAME, given, model_with_versions, version_registered, when

from registrar.contracts.commands import (
    Command,
    DeleteVersion,
    DeleteVersionTag,
    RecordMetrics,
    RegisterVersion,
    SetAlias,
    SetVersionTag,
    TransitionStage,
    UpdateVersionDescription,
)
from registrar.contracts.events import (
    AliasDeleted,
    AliasSet,
    MetricsRecorded,
    VersionDeleted,
    VersionDescriptionUpdated,
    VersionRegistered,
    VersionTagDeleted,
    VersionTagSet,
)
from registrar.contracts.values import DatasetRef, ParentRef
from registrar.domain.errors import Invalid, NotFound

DATASET_DIGEST = "sha256:3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"


def commands_on_version(number: int) -> list[Command]:
    """One of every command that targets an existing version `number` of model NAME."""
    return [
        UpdateVersionDescription(name=NAME, version=number, description="new words"),
        SetVersionTag(name=NAME, version=number, key="team", value="risk"),
        DeleteVersionTag(name=NAME, version=number, key="team"),
        RecordMetrics(name=NAME, version=number, metrics={"auc": 0.9}),
        TransitionStage(name=NAME, version=number, stage="Staging"),
        SetAlias(name=NAME, alias="champion", version=number),
        DeleteVersion(name=NAME, version=number),
    ]


def _label(command: Command) -> str:
    return command.type


# --- registering and numbering ---------------------------------------------------------------


def test_registering_a_version_records_everything_it_was_given_as_version_1() -> None:
    dataset = DatasetRef(
        name="transactions",
        version="2024-04",
        uri="s3://data/tx",
        digest=DATASET_DIGEST,
    )
    command = RegisterVersion(
        name=NAME,
        source="s3://models/fraud/1",
        run_id="run-42",
        digest="sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
        size=1024,
        metrics={"auc": 0.91},
        params={"depth": "6"},
        datasets=[dataset],
        tags={"team": "risk"},
        description="first cut",
    )

    events = when(command, given(*model_with_versions(0)))

    assert events == [
        VersionRegistered(
            version=1,
            source="s3://models/fraud/1",
            run_id="run-42",
            digest="sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
            size=1024,
            metrics={"auc": 0.91},
            params={"depth": "6"},
            datasets=[dataset],
            tags={"team": "risk"},
            description="first cut",
        )
    ]


def test_the_next_version_number_follows_the_last_one() -> None:
    state = given(*model_with_versions(3))

    assert when(RegisterVersion(name=NAME, source="s3://m/4"), state) == [
        VersionRegistered(version=4, source="s3://m/4")
    ]


def test_a_deleted_versions_number_is_never_reused() -> None:
    state = given(*model_with_versions(3), VersionDeleted(version=2))

    assert when(RegisterVersion(name=NAME, source="s3://m/next"), state) == [
        VersionRegistered(version=4, source="s3://m/next")
    ]


def test_deleting_the_last_version_does_not_free_its_number() -> None:
    state = given(*model_with_versions(3), VersionDeleted(version=3))

    assert when(RegisterVersion(name=NAME, source="s3://m/next"), state) == [
        VersionRegistered(version=4, source="s3://m/next")
    ]


# --- unknown and deleted versions ------------------------------------------------------------


@pytest.mark.parametrize("command", commands_on_version(7), ids=_label)
def test_a_command_on_an_unknown_version_is_not_found(command: Command) -> None:
    state = given(*model_with_versions(3))

    with pytest.raises(NotFound, match=f"model '{NAME}' has no version 7"):
        when(command, state)


@pytest.mark.parametrize(
    "command",
    [c for c in commands_on_version(2) if not isinstance(c, TransitionStage)],
    ids=_label,
)
def test_a_command_on_a_deleted_version_is_not_found_and_says_deleted(command: Command) -> None:
    state = given(*model_with_versions(3), VersionDeleted(version=2))

    with pytest.raises(NotFound, match=f"version 2 of model '{NAME}' was deleted"):
        when(command, state)


# --- description, tags, metrics --------------------------------------------------------------


def test_updating_a_version_description_records_it() -> None:
    state = given(*model_with_versions(2))

    events = when(UpdateVersionDescription(name=NAME, version=2, description="better"), state)

    assert events == [VersionDescriptionUpdated(version=2, description="better")]


def test_updating_a_version_description_to_the_same_text_changes_nothing() -> None:
    state = given(model_with_versions(0)[0], version_registered(1, description="same"))

    assert when(UpdateVersionDescription(name=NAME, version=1, description="same"), state) == []


def test_setting_a_version_tag_records_it() -> None:
    state = given(*model_with_versions(2))

    assert when(SetVersionTag(name=NAME, version=1, key="team", value="risk"), state) == [
        VersionTagSet(version=1, key="team", value="risk")
    ]


def test_setting_a_version_tag_to_its_current_value_changes_nothing() -> None:
    state = given(model_with_versions(0)[0], version_registered(1, tags={"team": "risk"}))

    assert when(SetVersionTag(name=NAME, version=1, key="team", value="risk"), state) == []


def test_a_version_tag_is_per_version() -> None:
    state = given(
        model_with_versions(0)[0],
        version_registered(1, tags={"team": "risk"}),
        version_registered(2),
    )

    assert when(SetVersionTag(name=NAME, version=2, key="team", value="risk"), state) == [
        VersionTagSet(version=2, key="team", value="risk")
    ]


def test_deleting_a_version_tag_records_it() -> None:
    state = given(model_with_versions(0)[0], version_registered(1, tags={"team": "risk"}))

    assert when(DeleteVersionTag(name=NAME, version=1, key="team"), state) == [
        VersionTagDeleted(version=1, key="team")
    ]


def test_deleting_a_missing_version_tag_changes_nothing() -> None:
    state = given(model_with_versions(0)[0], version_registered(1, tags={"tier": "1"}))

    assert when(DeleteVersionTag(name=NAME, version=1, key="team"), state) == []


def test_recording_new_metrics_records_them() -> None:
    state = given(model_with_versions(0)[0], version_registered(1, metrics={"auc": 0.9}))

    events = when(RecordMetrics(name=NAME, version=1, metrics={"recall": 0.7}), state)

    assert events == [MetricsRecorded(version=1, metrics={"recall": 0.7})]


def test_recording_a_changed_metric_records_it() -> None:
    state = given(model_with_versions(0)[0], version_registered(1, metrics={"auc": 0.9}))

    events = when(RecordMetrics(name=NAME, version=1, metrics={"auc": 0.95}), state)

    assert events == [MetricsRecorded(version=1, metrics={"auc": 0.95})]


def test_recording_metrics_already_equal_changes_nothing() -> None:
    state = given(
        model_with_versions(0)[0], version_registered(1, metrics={"auc": 0.9, "recall": 0.7})
    )

    assert when(RecordMetrics(name=NAME, version=1, metrics={"auc": 0.9}), state) == []


def test_recording_metrics_of_which_only_some_changed_records_them_all() -> None:
    state = given(
        model_with_versions(0)[0], version_registered(1, metrics={"auc": 0.9, "recall": 0.7})
    )

    events = when(RecordMetrics(name=NAME, version=1, metrics={"auc": 0.9, "recall": 0.8}), state)

    assert events == [MetricsRecorded(version=1, metrics={"auc": 0.9, "recall": 0.8})]


def test_recording_a_zero_metric_that_was_never_recorded_is_a_change() -> None:
    state = given(*model_with_versions(1))

    assert when(RecordMetrics(name=NAME, version=1, metrics={"loss": 0.0}), state) == [
        MetricsRecorded(version=1, metrics={"loss": 0.0})
    ]


# --- parents ---------------------------------------------------------------------------------


def test_a_live_parent_in_the_same_model_is_recorded() -> None:
    state = given(*model_with_versions(2))
    parent = ParentRef(model=NAME, version=1, relation="fine_tuned_from")

    events = when(RegisterVersion(name=NAME, source="s3://m/3", parents=[parent]), state)

    assert events == [VersionRegistered(version=3, source="s3://m/3", parents=[parent])]


@pytest.mark.parametrize("missing", [3, 4, 99], ids=["the new number", "next", "far ahead"])
def test_a_parent_in_the_same_model_that_does_not_exist_is_invalid(missing: int) -> None:
    state = given(*model_with_versions(2))
    parent = ParentRef(model=NAME, version=missing)

    with pytest.raises(Invalid, match=f"parent version {missing} of model '{NAME}'"):
        when(RegisterVersion(name=NAME, source="s3://m/3", parents=[parent]), state)


def test_a_deleted_parent_in_the_same_model_is_invalid() -> None:
    state = given(*model_with_versions(2), VersionDeleted(version=1))
    parent = ParentRef(model=NAME, version=1)

    with pytest.raises(Invalid, match="parent version 1"):
        when(RegisterVersion(name=NAME, source="s3://m/3", parents=[parent]), state)


def test_one_bad_parent_among_good_ones_is_invalid() -> None:
    state = given(*model_with_versions(2))
    parents = [ParentRef(model=NAME, version=1), ParentRef(model=NAME, version=9)]

    with pytest.raises(Invalid, match="parent version 9"):
        when(RegisterVersion(name=NAME, source="s3://m/3", parents=parents), state)


def test_a_parent_in_another_model_is_passed_through_unchecked() -> None:
    # Checking another model's stream is the command handler's job, not this stream's decider.
    state = given(*model_with_versions(1))
    parents = [
        ParentRef(model="base-llm", version=42, relation="distilled_from"),
        ParentRef(model=NAME, version=1),
    ]

    events = when(RegisterVersion(name=NAME, source="s3://m/2", parents=parents), state)

    assert events == [VersionRegistered(version=2, source="s3://m/2", parents=parents)]


# --- deleting --------------------------------------------------------------------------------


def test_deleting_a_version_without_aliases_records_just_the_deletion() -> None:
    state = given(*model_with_versions(2), AliasSet(alias="champion", version=1))

    assert when(DeleteVersion(name=NAME, version=2), state) == [VersionDeleted(version=2)]


def test_deleting_a_version_releases_each_of_its_aliases_first() -> None:
    state = given(
        *model_with_versions(2),
        AliasSet(alias="prod", version=2),
        AliasSet(alias="champion", version=2),
        AliasSet(alias="baseline", version=1),
    )

    assert when(DeleteVersion(name=NAME, version=2), state) == [
        AliasDeleted(alias="champion", version=2),
        AliasDeleted(alias="prod", version=2),
        VersionDeleted(version=2),
    ]


def test_a_version_that_lost_an_alias_does_not_release_it_on_deletion() -> None:
    state = given(
        *model_with_versions(2),
        AliasSet(alias="champion", version=1),
        AliasSet(alias="champion", version=2, previous_version=1),
    )

    assert when(DeleteVersion(name=NAME, version=1), state) == [VersionDeleted(version=1)]
