"""Rules enforced when a command is built: model names, tag keys and tag values. An invalid one
never reaches `decide`; pydantic refuses it and names the field that was wrong."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from registrar.contracts.commands import (
    DeleteModelTag,
    RegisterModel,
    RenameModel,
    SetModelTag,
    SetVersionTag,
)
from registrar.contracts.values import MAX_NAME_LENGTH, MAX_TAG_KEY_LENGTH, MAX_TAG_VALUE_LENGTH


def refused_fields(error: ValidationError) -> set[Any]:
    """The top-level field of each complaint in `error`."""
    return {complaint["loc"][0] for complaint in error.errors()}


INVALID_MODEL_NAMES = {
    "empty": ("", "blank"),
    "only spaces": ("   ", "blank"),
    "slash": ("team/model", "'/' or ':'"),
    "colon": ("team:model", "'/' or ':'"),
    "newline": ("fraud\ndetector", "control or invisible characters"),
    "nul": ("fraud\x00detector", "control or invisible characters"),
    "tab": ("fraud\tdetector", "control or invisible characters"),
    "delete char": ("fraud\x7fdetector", "control or invisible characters"),
    "C1 control": ("fraud\x85detector", "control or invisible characters"),
    "zero-width space": ("fraud\u200bdetector", "control or invisible characters"),
    "right-to-left override": ("fraud\u202edetector", "control or invisible characters"),
    "leading space": (" fraud-detector", "whitespace"),
    "trailing space": ("fraud-detector ", "whitespace"),
    "too long": ("m" * (MAX_NAME_LENGTH + 1), f"at most {MAX_NAME_LENGTH}"),
}


@pytest.mark.parametrize(
    ("name", "reason"), INVALID_MODEL_NAMES.values(), ids=INVALID_MODEL_NAMES.keys()
)
def test_an_invalid_model_name_is_refused(name: str, reason: str) -> None:
    with pytest.raises(ValidationError) as refused:
        RegisterModel(name=name)

    assert refused_fields(refused.value) == {"name"}
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    ("name", "reason"), INVALID_MODEL_NAMES.values(), ids=INVALID_MODEL_NAMES.keys()
)
def test_renaming_to_an_invalid_name_is_refused(name: str, reason: str) -> None:
    with pytest.raises(ValidationError) as refused:
        RenameModel(name="fraud-detector", new_name=name)

    assert refused_fields(refused.value) == {"new_name"}
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    "name",
    ["fraud-detector", "Fraud Detector (EU) v2.1", "模型", "m" * MAX_NAME_LENGTH, "a"],
)
def test_a_valid_model_name_is_accepted(name: str) -> None:
    assert RegisterModel(name=name).name == name


INVALID_TAG_KEYS = {
    "empty": "",
    "bang": "owner!",
    "newline": "owner\n",
    "too long": "k" * (MAX_TAG_KEY_LENGTH + 1),
}


@pytest.mark.parametrize("key", INVALID_TAG_KEYS.values(), ids=INVALID_TAG_KEYS.keys())
def test_an_invalid_tag_key_is_refused_on_a_model_tag(key: str) -> None:
    with pytest.raises(ValidationError) as refused:
        SetModelTag(name="fraud-detector", key=key, value="x")

    assert refused_fields(refused.value) == {"key"}


@pytest.mark.parametrize("key", INVALID_TAG_KEYS.values(), ids=INVALID_TAG_KEYS.keys())
def test_an_invalid_tag_key_is_refused_on_a_version_tag(key: str) -> None:
    with pytest.raises(ValidationError) as refused:
        SetVersionTag(name="fraud-detector", version=1, key=key, value="x")

    assert refused_fields(refused.value) == {"key"}


@pytest.mark.parametrize("key", INVALID_TAG_KEYS.values(), ids=INVALID_TAG_KEYS.keys())
def test_an_invalid_tag_key_is_refused_when_deleting_a_tag(key: str) -> None:
    with pytest.raises(ValidationError) as refused:
        DeleteModelTag(name="fraud-detector", key=key)

    assert refused_fields(refused.value) == {"key"}


@pytest.mark.parametrize("key", INVALID_TAG_KEYS.values(), ids=INVALID_TAG_KEYS.keys())
def test_an_invalid_tag_key_is_refused_among_initial_tags(key: str) -> None:
    with pytest.raises(ValidationError) as refused:
        RegisterModel(name="fraud-detector", tags={"team": "risk", key: "x"})

    assert refused_fields(refused.value) == {"tags"}


def test_the_tag_key_message_says_which_characters_are_allowed() -> None:
    with pytest.raises(ValidationError, match=r"tag key 'owner!' is invalid: use letters"):
        SetModelTag(name="fraud-detector", key="owner!", value="x")


@pytest.mark.parametrize(
    "key", ["team", "mlflow.source.type", "a/b:c d-e_f", "k" * MAX_TAG_KEY_LENGTH]
)
def test_a_valid_tag_key_is_accepted(key: str) -> None:
    assert SetModelTag(name="fraud-detector", key=key, value="x").key == key


def test_a_tag_value_over_the_limit_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        SetModelTag(name="fraud-detector", key="notes", value="x" * (MAX_TAG_VALUE_LENGTH + 1))

    assert refused_fields(refused.value) == {"value"}


def test_a_version_tag_value_over_the_limit_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        SetVersionTag(
            name="fraud-detector", version=1, key="notes", value="x" * (MAX_TAG_VALUE_LENGTH + 1)
        )

    assert refused_fields(refused.value) == {"value"}


def test_an_initial_tag_value_over_the_limit_is_refused_and_names_its_key() -> None:
    with pytest.raises(ValidationError) as refused:
        RegisterModel(name="fraud-detector", tags={"notes": "x" * (MAX_TAG_VALUE_LENGTH + 1)})

    assert [complaint["loc"] for complaint in refused.value.errors()] == [("tags", "notes")]


def test_a_tag_value_at_the_limit_is_accepted() -> None:
    value = "x" * MAX_TAG_VALUE_LENGTH

    assert SetModelTag(name="fraud-detector", key="notes", value=value).value == value
