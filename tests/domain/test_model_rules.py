"""Rules about a model as a whole: its name (held by one live model at a time), description,
tags, deletion, and what happens to commands aimed at a model that is missing, deleted or
renamed."""

from __future__ import annotations

import pytest
from scenario import MODEL_ID, NAME, given, model_registered, model_with_versions, when

from registrar.contracts.commands import (
    Command,
    DeleteAlias,
    DeleteModel,
    DeleteModelTag,
    DeleteVersion,
    DeleteVersionTag,
    RecordMetrics,
    RegisterModel,
    RegisterVersion,
    RenameModel,
    SetAlias,
    SetModelTag,
    SetVersionTag,
    TransitionStage,
    UpdateModelDescription,
    UpdateVersionDescription,
)
from registrar.contracts.events import (
    ModelDeleted,
    ModelDescriptionUpdated,
    ModelRegistered,
    ModelRenamed,
    ModelTagDeleted,
    ModelTagSet,
)
from registrar.domain.decider import name_is_free
from registrar.domain.errors import Conflict, NotFound


def commands_naming(name: str) -> list[Command]:
    """One of every command that targets an existing model, all naming `name`."""
    return [
        UpdateModelDescription(name=name, description="new words"),
        SetModelTag(name=name, key="team", value="risk"),
        DeleteModelTag(name=name, key="team"),
        RenameModel(name=name, new_name="something-else"),
        DeleteModel(name=name),
        RegisterVersion(name=name, source="s3://bucket/model"),
        UpdateVersionDescription(name=name, version=1, description="new words"),
        SetVersionTag(name=name, version=1, key="team", value="risk"),
        DeleteVersionTag(name=name, version=1, key="team"),
        RecordMetrics(name=name, version=1, metrics={"auc": 0.9}),
        TransitionStage(name=name, version=1, stage="Production"),
        SetAlias(name=name, alias="champion", version=1),
        DeleteAlias(name=name, alias="champion"),
        DeleteVersion(name=name, version=1),
    ]


def _label(command: Command) -> str:
    return command.type


# --- registering -----------------------------------------------------------------------------


def test_registering_a_free_name_records_the_model_with_its_description_and_tags() -> None:
    events = when(
        RegisterModel(name=NAME, description="flags fraud", tags={"team": "risk"}),
        given(),
        new_model_id=MODEL_ID,
    )

    assert events == [
        ModelRegistered(
            model_id=MODEL_ID, name=NAME, description="flags fraud", tags={"team": "risk"}
        )
    ]


def test_registering_needs_the_new_streams_id_from_the_caller() -> None:
    with pytest.raises(ValueError, match="stream id"):
        when(RegisterModel(name=NAME), given())


def test_registering_a_taken_name_is_refused() -> None:
    state = given(model_registered(NAME))

    with pytest.raises(Conflict, match="already exists") as refused:
        when(RegisterModel(name=NAME), state, new_model_id="another-id")
    assert NAME in refused.value.message


def test_a_live_models_name_is_taken_and_a_released_one_is_free_again() -> None:
    # As in MLflow: a deleted model's name, and a renamed model's former name, may be taken by
    # a new model (or a rename); the events keep which model held a name when.
    live = given(model_registered(NAME))
    renamed = given(model_registered("old-name"), ModelRenamed(old_name="old-name", new_name=NAME))
    deleted = given(model_registered(NAME), ModelDeleted(name=NAME))

    assert not name_is_free(NAME, live)
    assert not name_is_free(NAME, renamed)  # its current name
    assert name_is_free("old-name", renamed)
    assert name_is_free(NAME, deleted)
    assert name_is_free(NAME, None)


# --- renaming --------------------------------------------------------------------------------


def test_renaming_records_the_old_and_the_new_name() -> None:
    state = given(model_registered(NAME))

    events = when(RenameModel(name=NAME, new_name="fraud-detector-v2"), state)

    assert events == [ModelRenamed(old_name=NAME, new_name="fraud-detector-v2")]


def test_renaming_to_the_same_name_changes_nothing() -> None:
    state = given(model_registered(NAME))

    assert when(RenameModel(name=NAME, new_name=NAME), state) == []


def test_a_renamed_model_answers_to_its_new_name() -> None:
    state = given(model_registered("old-name"), ModelRenamed(old_name="old-name", new_name=NAME))

    assert when(SetModelTag(name=NAME, key="team", value="risk"), state) == [
        ModelTagSet(key="team", value="risk")
    ]


# --- commands aimed at the wrong model -------------------------------------------------------


@pytest.mark.parametrize("command", commands_naming(NAME), ids=_label)
def test_a_command_against_a_missing_model_is_not_found(command: Command) -> None:
    with pytest.raises(NotFound, match=f"no model named '{NAME}'"):
        when(command, given())


@pytest.mark.parametrize("command", commands_naming(NAME), ids=_label)
def test_a_command_against_a_deleted_model_is_not_found_and_says_deleted(
    command: Command,
) -> None:
    state = given(*model_with_versions(1), ModelDeleted(name=NAME))

    with pytest.raises(NotFound, match="deleted") as refused:
        when(command, state)
    assert NAME in refused.value.message


@pytest.mark.parametrize("command", commands_naming("old-name"), ids=_label)
def test_a_command_using_a_former_name_is_not_found_and_points_to_the_new_name(
    command: Command,
) -> None:
    state = given(
        *model_with_versions(1, name="old-name"),
        ModelRenamed(old_name="old-name", new_name=NAME),
    )

    with pytest.raises(NotFound, match="renamed") as refused:
        when(command, state)
    assert repr(NAME) in refused.value.message


# --- description, tags, deletion -------------------------------------------------------------


def test_updating_the_model_description_records_it() -> None:
    state = given(model_registered(description="old words"))

    events = when(UpdateModelDescription(name=NAME, description="new words"), state)

    assert events == [ModelDescriptionUpdated(description="new words")]


def test_updating_the_model_description_to_the_same_text_changes_nothing() -> None:
    state = given(model_registered(description="same words"))

    assert when(UpdateModelDescription(name=NAME, description="same words"), state) == []


def test_setting_a_new_model_tag_records_it() -> None:
    state = given(model_registered())

    assert when(SetModelTag(name=NAME, key="team", value="risk"), state) == [
        ModelTagSet(key="team", value="risk")
    ]


def test_changing_a_model_tags_value_records_it() -> None:
    state = given(model_registered(tags={"team": "risk"}))

    assert when(SetModelTag(name=NAME, key="team", value="payments"), state) == [
        ModelTagSet(key="team", value="payments")
    ]


def test_setting_a_model_tag_to_its_current_value_changes_nothing() -> None:
    state = given(model_registered(tags={"team": "risk"}))

    assert when(SetModelTag(name=NAME, key="team", value="risk"), state) == []


def test_a_model_tag_set_to_the_empty_string_is_still_a_change() -> None:
    state = given(model_registered())

    assert when(SetModelTag(name=NAME, key="flag", value=""), state) == [
        ModelTagSet(key="flag", value="")
    ]


def test_deleting_a_model_tag_records_it() -> None:
    state = given(model_registered(tags={"team": "risk", "tier": "1"}))

    assert when(DeleteModelTag(name=NAME, key="team"), state) == [ModelTagDeleted(key="team")]


def test_deleting_a_missing_model_tag_changes_nothing() -> None:
    state = given(model_registered(tags={"tier": "1"}))

    assert when(DeleteModelTag(name=NAME, key="team"), state) == []


def test_deleting_a_model_records_its_name() -> None:
    state = given(*model_with_versions(2))

    assert when(DeleteModel(name=NAME), state) == [ModelDeleted(name=NAME)]


def test_deleting_a_renamed_model_records_its_current_name() -> None:
    state = given(model_registered("old-name"), ModelRenamed(old_name="old-name", new_name=NAME))

    assert when(DeleteModel(name=NAME), state) == [ModelDeleted(name=NAME)]
