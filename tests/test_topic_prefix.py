"""REGISTRAR_TOPIC_PREFIX: one function names every topic and consumer group on the cluster, so
registries with different prefixes share a cluster without sharing a topic or a group. (On a real
broker: tests/bus/test_promotions.py.)"""

from __future__ import annotations

import pytest

from registrar.bus.asyncapi import specification
from registrar.contracts.topics import ALL_TOPICS, REGISTRY_EVENTS, group_name, topic_name
from registrar.settings import Settings, SettingsError


def test_without_a_prefix_the_names_are_the_documented_ones() -> None:
    assert topic_name(REGISTRY_EVENTS) == "registry.events"
    assert group_name("registrar.promotions") == "registrar.promotions"


def test_two_prefixes_name_distinct_topics_and_groups() -> None:
    first = {topic_name(t, "team-a.") for t in ALL_TOPICS}
    second = {topic_name(t, "team-b.") for t in ALL_TOPICS}
    assert len(first) == len(second) == len(ALL_TOPICS)
    assert not first & second
    assert topic_name(REGISTRY_EVENTS, "team-a.") == "team-a.registry.events"
    assert group_name("registrar.ingest", "team-a.") != group_name("registrar.ingest", "team-b.")


def test_the_prefix_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRAR_TOPIC_PREFIX", "team-a.")
    assert Settings.from_env().topic_prefix == "team-a."
    monkeypatch.setenv("REGISTRAR_TOPIC_PREFIX", "team a/")
    with pytest.raises(SettingsError, match="REGISTRAR_TOPIC_PREFIX: use at most 100 letters"):
        Settings.from_env()


def test_the_asyncapi_document_names_the_prefixed_topics() -> None:
    channels = specification("0", "team-a.").to_specification().channels
    assert channels
    assert all("team-a." in name for name in channels)
