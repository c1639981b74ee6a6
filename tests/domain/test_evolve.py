"""`evolve`, the fold of events into a model's state: what each event does to the state, that it
never mutates the state it is given, and that a state survives a snapshot round trip."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from scenario import (
    AT,
    MODEL_ID,
    NAME,
    given,
    model_registered,
    moved,
    version_registered,
    when,
)

from registrar.contracts.commands import RegisterVersion
from registrar.contracts.events import (
    AliasDeleted,
    AliasSet,
    Event,
    MetricsRecorded,
    ModelDeleted,
    ModelDescriptionUpdated,
    ModelRenamed,
    ModelTagDeleted,
    ModelTagSet,
    StageChanged,
    VersionDeleted,
    VersionDescriptionUpdated,
    VersionRegistered,
    VersionTagDeleted,
    VersionTagSet,
)
from registrar.contracts.values import DatasetRef, ParentRef, Stage
from registrar.domain.errors import Invalid
from registrar.domain.state import (
    ModelState,
    evolve,
    state_from_json,
    state_to_json,
    touched_versions,
)

LATER = AT + timedelta(hours=1)


def rich_history() -> list[Event]:
    """A model with every kind of thing a state can hold: renamed, tagged, three versions with
    datasets, parents, tags and metrics, stages, aliases, and one deleted version."""
    return [
        model_registered("old-name", description="flags fraud", tags={"team": "risk"}),
        ModelRenamed(old_name="old-name", new_name=NAME),
        ModelTagSet(key="tier", value="1"),
        version_registered(
            1,
            run_id="run-1",
            digest="sha256:one",
            size=2048,
            metrics={"auc": 0.9},
            params={"depth": "6"},
            datasets=[DatasetRef(name="tx", version="2024-04", uri="s3://d/tx", digest="d1")],
            tags={"framework": "xgboost"},
            description="first",
        ),
        version_registered(
            2,
            parents=[
                ParentRef(model=NAME, version=1, relation="fine_tuned_from"),
                ParentRef(model="base-llm", version=7),
            ],
            datasets=[DatasetRef(name="tx"), DatasetRef(name="labels", uri="s3://d/labels")],
        ),
        version_registered(3),
        MetricsRecorded(version=1, metrics={"recall": 0.75}),
        moved(1, Stage.NONE, Stage.PRODUCTION),
        moved(2, Stage.NONE, Stage.STAGING),
        AliasSet(alias="champion", version=1),
        AliasSet(alias="challenger", version=2),
        AliasSet(alias="doomed", version=3),
        AliasDeleted(alias="doomed", version=3),
        VersionDeleted(version=3),
    ]


def rich_state() -> ModelState:
    state = given(*rich_history())
    assert state is not None
    return state


# --- what events do --------------------------------------------------------------------------


def test_folding_the_history_builds_the_expected_state() -> None:
    state = rich_state()

    assert (state.model_id, state.name, state.description) == (MODEL_ID, NAME, "flags fraud")
    assert state.tags == {"team": "risk", "tier": "1"}
    assert state.last_version == 3
    assert state.aliases == {"champion": 1, "challenger": 2}
    assert state.versions[1].metrics == {"auc": 0.9, "recall": 0.75}
    assert [state.versions[n].stage for n in (1, 2, 3)] == [
        Stage.PRODUCTION,
        Stage.STAGING,
        Stage.NONE,
    ]
    assert state.versions[3].deleted and state.live_version(3) is None
    assert state.live_version(1) is state.versions[1]
    assert state.versions[2].parents == (
        ParentRef(model=NAME, version=1, relation="fine_tuned_from"),
        ParentRef(model="base-llm", version=7),
    )


def test_a_registered_model_is_created_and_updated_at_the_events_time() -> None:
    state = evolve(None, model_registered(), AT)

    assert state is not None
    assert (state.created_at, state.updated_at) == (AT, AT)
    assert (state.deleted, state.last_version, dict(state.versions), state.aliases) == (
        False,
        0,
        {},
        {},
    )


def test_a_later_event_moves_updated_at_but_not_created_at() -> None:
    state = evolve(rich_state(), VersionTagSet(version=1, key="k", value="v"), LATER)

    assert state is not None
    assert state.created_at == AT
    assert state.updated_at == LATER
    assert state.versions[1].created_at == AT
    assert state.versions[1].updated_at == LATER
    assert state.versions[2].updated_at == AT


def test_a_deleted_model_is_marked_deleted_and_keeps_its_versions() -> None:
    state = evolve(rich_state(), ModelDeleted(name=NAME), LATER)

    assert state is not None
    assert state.deleted
    assert set(state.versions) == {1, 2, 3}


def test_a_metric_recorded_again_takes_the_new_value() -> None:
    state = evolve(rich_state(), MetricsRecorded(version=1, metrics={"auc": 0.95}), LATER)

    assert state is not None
    assert state.versions[1].metrics == {"auc": 0.95, "recall": 0.75}


def test_an_archived_by_stage_change_moves_the_version_to_archived() -> None:
    event = StageChanged(
        version=1,
        from_stage=Stage.PRODUCTION,
        to_stage=Stage.ARCHIVED,
        reason="archived_by",
        archived_by_version=2,
    )

    state = evolve(rich_state(), event, LATER)

    assert state is not None
    assert state.versions[1].stage is Stage.ARCHIVED


# --- purity ----------------------------------------------------------------------------------

EVENTS_ON_A_RICH_STATE: dict[str, Event] = {
    "model registered": model_registered("fresh"),
    "model description": ModelDescriptionUpdated(description="changed"),
    "model tag set": ModelTagSet(key="team", value="payments"),
    "model tag deleted": ModelTagDeleted(key="team"),
    "model renamed": ModelRenamed(old_name=NAME, new_name="renamed"),
    "model deleted": ModelDeleted(name=NAME),
    "version registered": version_registered(4, tags={"x": "y"}, metrics={"auc": 0.5}),
    "version description": VersionDescriptionUpdated(version=1, description="changed"),
    "version tag set": VersionTagSet(version=1, key="framework", value="lightgbm"),
    "version tag deleted": VersionTagDeleted(version=1, key="framework"),
    "metrics recorded": MetricsRecorded(version=1, metrics={"auc": 0.99}),
    "stage changed": moved(2, Stage.STAGING, Stage.PRODUCTION),
    "alias set": AliasSet(alias="champion", version=2, previous_version=1),
    "alias deleted": AliasDeleted(alias="champion", version=1),
    "version deleted": VersionDeleted(version=2),
}


@pytest.mark.parametrize(
    "event", EVENTS_ON_A_RICH_STATE.values(), ids=EVENTS_ON_A_RICH_STATE.keys()
)
def test_evolving_never_mutates_the_previous_state(event: Event) -> None:
    before = rich_state()
    untouched = copy.deepcopy(before)

    after = evolve(before, event, LATER)

    assert before == untouched
    assert after != before  # the event did change something, so the comparison means something


@pytest.mark.parametrize(
    "event", EVENTS_ON_A_RICH_STATE.values(), ids=EVENTS_ON_A_RICH_STATE.keys()
)
def test_every_event_moves_the_models_updated_at_to_its_time(event: Event) -> None:
    after = evolve(rich_state(), event, LATER)

    assert after is not None
    assert after.updated_at == LATER


VERSION_EVENTS: dict[str, Event] = {
    label: event
    for label, event in EVENTS_ON_A_RICH_STATE.items()
    if label.startswith(("version", "metrics", "stage"))
}


@pytest.mark.parametrize("event", VERSION_EVENTS.values(), ids=VERSION_EVENTS.keys())
def test_an_event_on_a_version_moves_that_versions_updated_at(event: Event) -> None:
    after = evolve(rich_state(), event, LATER)

    assert after is not None
    assert after.versions[event.version].updated_at == LATER  # type: ignore[union-attr]


def test_evolving_a_registered_version_does_not_share_the_events_dicts() -> None:
    event = version_registered(4, tags={"x": "y"}, metrics={"auc": 0.5}, params={"p": "1"})
    state = evolve(rich_state(), event, LATER)
    assert state is not None

    state.versions[4].tags["x"] = "changed"
    state.versions[4].metrics["auc"] = 0.0
    state.versions[4].params["p"] = "changed"

    assert (event.tags, event.metrics, event.params) == ({"x": "y"}, {"auc": 0.5}, {"p": "1"})


def test_evolving_a_registered_model_does_not_share_the_events_tags() -> None:
    event = model_registered(tags={"team": "risk"})
    state = evolve(None, event, AT)
    assert state is not None

    state.tags["team"] = "changed"

    assert event.tags == {"team": "risk"}


@pytest.mark.parametrize(
    "event",
    [
        ModelRenamed(old_name="a", new_name="b"),
        ModelTagSet(key="team", value="risk"),
        version_registered(1),
        AliasSet(alias="champion", version=1),
        VersionDeleted(version=1),
    ],
    ids=lambda event: event.type,
)
def test_an_event_before_model_registered_is_refused(event: Event) -> None:
    with pytest.raises(ValueError, match=f"{event.type} cannot come before ModelRegistered"):
        evolve(None, event, AT)


# --- snapshots -------------------------------------------------------------------------------


def test_a_snapshot_round_trips_to_an_equal_state() -> None:
    state = rich_state()

    assert state_from_json(state_to_json(state)) == state


def test_a_snapshot_round_trips_through_json_text() -> None:
    # Stored snapshots go through JSON text, where the version numbers become string keys.
    state = evolve(rich_state(), ModelDeleted(name=NAME), LATER)
    assert state is not None

    text = json.dumps(state_to_json(state))

    assert state_from_json(json.loads(text)) == state


def test_a_restored_snapshot_keeps_its_types() -> None:
    restored = state_from_json(json.loads(json.dumps(state_to_json(rich_state()))))

    assert set(restored.versions) == {1, 2, 3}
    assert isinstance(restored.versions[1].datasets, tuple)
    assert isinstance(restored.versions[1].datasets[0], DatasetRef)
    assert isinstance(restored.versions[2].parents[0], ParentRef)
    assert restored.versions[1].stage is Stage.PRODUCTION
    assert restored.updated_at == AT and restored.updated_at.tzinfo is not None
    assert restored.updated_at.utcoffset() == UTC.utcoffset(None)


def test_a_restored_snapshot_decides_like_the_original() -> None:
    restored = state_from_json(json.loads(json.dumps(state_to_json(rich_state()))))
    parent = ParentRef(model=NAME, version=1)

    assert when(RegisterVersion(name=NAME, source="s3://m/4", parents=[parent]), restored) == [
        VersionRegistered(version=4, source="s3://m/4", parents=[parent])
    ]
    deleted_parent = ParentRef(model=NAME, version=3)
    with pytest.raises(Invalid, match="parent version 3"):
        when(RegisterVersion(name=NAME, source="s3://m/4", parents=[deleted_parent]), restored)


def test_datetime_fields_survive_a_non_utc_offset() -> None:
    offset = timezone(timedelta(hours=5, minutes=30))
    state = evolve(None, model_registered(), datetime(2024, 5, 1, 17, 30, tzinfo=offset))
    assert state is not None

    assert state_from_json(json.loads(json.dumps(state_to_json(state)))) == state


def test_the_versions_a_batch_touches_include_every_version_it_changed() -> None:
    """Read models rewrite only `touched_versions`: every version whose state or aliases differ
    after a batch must be among them, wherever the batch starts and ends."""
    history = [
        *rich_history(),
        AliasSet(alias="challenger", version=1),  # moves from version 2
        AliasDeleted(alias="champion", version=1),
        VersionDeleted(version=1),
    ]
    for start in range(len(history)):
        for end in range(start + 1, len(history) + 1):
            before, after = given(*history[:start]), given(*history[:end])
            assert after is not None
            batch = [SimpleNamespace(payload=e.model_dump(mode="json")) for e in history[start:end]]
            changed = {
                n
                for n, version in after.versions.items()
                if before is None
                or before.versions.get(n) != version
                or before.aliases_of(n) != after.aliases_of(n)
            }
            assert changed <= set(touched_versions(before, after, batch))  # type: ignore[arg-type]
