"""The Python client against a running Registrar, each test once per flavour (Client, AsyncClient):
models, versions and their lineage, stages, aliases, approvals, lineage, audit, history, reading
its own writes, and every refusal raised as the ClientError it is."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from registrar import ClientError, Conflict, InvalidRequest, NotFound
from registrar.contracts.values import DatasetRef, ParentRef

from .support import AnyClient, MakeClient, Recorder, done, every, unique


async def new_model(client: AnyClient, versions: int = 0, prefix: str = "model") -> str:
    name = unique(prefix)
    await done(client.create_model(name))
    for n in range(versions):
        await done(client.register_version(name, f"s3://models/{name}/{n + 1}"))
    return name


# Models and versions -----------------------------------------------------------------------------


async def test_a_model_created_is_read_back_by_name(client: AnyClient) -> None:
    name = unique("fraud")
    created = await done(client.create_model(name, "Flags fraud", tags={"team": "risk"}))
    assert created.name == name and created.position is not None
    read = await done(client.get_model(name))
    assert (read.name, read.description, read.tags) == (name, "Flags fraud", {"team": "risk"})
    assert read.id == created.id and read.latest_version == 0


async def test_register_version_returns_its_number_and_keeps_its_lineage(
    client: AnyClient,
) -> None:
    name = await new_model(client)
    first = await done(
        client.register_version(
            name,
            "s3://models/1",
            run_id="run-1",
            digest="sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
            size=10,
            metrics={"auc": 0.9},
            params={"depth": "3"},
            datasets=[DatasetRef(name="customers", version="v2")],
            tags={"k": "v"},
            description="first",
        )
    )
    second = await done(
        client.register_version(
            name,
            "s3://models/2",
            datasets=[{"name": "customers", "version": "v3"}],
            parents=[ParentRef(model=name, version=1, relation="fine_tuned_from")],
        )
    )
    assert (first.version, second.version) == (1, 2)
    assert (first.run_id, first.digest, first.size, first.description) == (
        "run-1",
        "sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
        10,
        "first",
    )
    assert first.metrics == {"auc": 0.9} and first.params == {"depth": "3"}
    assert [d.version for d in first.datasets] == ["v2"]
    assert [(p.model, p.version, p.relation) for p in second.parents] == [
        (name, 1, "fine_tuned_from")
    ]
    assert (await done(client.get_version(name, 2))).parents == second.parents


async def test_the_same_idempotency_key_registers_one_version(client: AnyClient) -> None:
    name = await new_model(client)
    key = uuid.uuid4()
    first = await done(client.register_version(name, "s3://a", idempotency_key=key))
    again = await done(client.register_version(name, "s3://a", idempotency_key=key))
    assert first.version == again.version == 1
    assert [v.version for v in await every(client.list_versions(name))] == [1]


async def test_a_model_is_described_renamed_tagged_and_deleted(client: AnyClient) -> None:
    name = await new_model(client)
    renamed = unique("renamed")
    changed = await done(client.update_model(name, description="new", new_name=renamed))
    assert (changed.name, changed.description) == (renamed, "new")
    tagged = await done(client.set_model_tag(renamed, "owner", "ann"))
    assert tagged.tags == {"owner": "ann"}
    assert (await done(client.delete_model_tag(renamed, "owner"))).tags == {}
    deleted = await done(client.delete_model(renamed))
    assert deleted.deleted and deleted.position > 0
    with pytest.raises(NotFound, match="was deleted"):
        await done(client.get_model(renamed))


async def test_a_version_is_described_tagged_carded_and_deleted(client: AnyClient) -> None:
    name = await new_model(client, versions=2)
    updated = await done(client.update_version(name, 1, description="d", metrics={"f1": 0.5}))
    assert (updated.description, updated.metrics) == ("d", {"f1": 0.5})
    assert (await done(client.set_version_tag(name, 1, "k", "v"))).tags == {"k": "v"}
    assert (await done(client.delete_version_tag(name, 1, "k"))).tags == {}
    carded = await done(client.update_model_card(name, 1, {"intended_use": "testing"}))
    assert carded.model_card == {"intended_use": "testing"}
    assert (await done(client.delete_version(name, 2))).deleted
    assert [v.version for v in await every(client.list_versions(name))] == [1]


# Read-your-writes and lists ----------------------------------------------------------------------


async def test_reads_after_a_write_see_it_without_waiting(client: AnyClient) -> None:
    name = await new_model(client, versions=2)
    await done(client.set_stage(name, 2, "Staging"))
    staging = await every(client.list_versions(name, stage="Staging"))
    assert [v.version for v in staging] == [2]
    found = await every(client.search_versions(model=name, stage="staging"))
    assert [(v.model, v.version) for v in found] == [(name, 2)]
    assert [m.name for m in await every(client.list_models(name))] == [name]


async def test_min_position_goes_with_reads_of_read_models_only(
    make_client: MakeClient, recorder: Recorder
) -> None:
    client = make_client(transport=recorder.transport)
    name = unique("positions")
    await done(client.create_model(name))
    assert [r.url.params.get("min_position") for r in recorder.to("/v1/models")] == [None]
    written = await done(client.register_version(name, "s3://x"))
    assert client.position == written.position
    await every(client.list_models(name))
    await done(client.get_model(name))
    await done(client.lineage(f"version:{name}/1"))
    listed = recorder.to("/v1/models")[-1]
    assert listed.method == "GET" and listed.url.params["min_position"] == str(written.position)
    assert "min_position" not in recorder.to(f"/v1/models/{name}")[-1].url.params
    assert recorder.to("/v1/lineage")[-1].url.params["min_position"] == str(written.position)


async def test_list_models_filters_by_name_glob_and_tags_across_pages(
    make_client: MakeClient, recorder: Recorder
) -> None:
    client = make_client(transport=recorder.transport)
    prefix = unique("glob")
    for suffix, team in (("a", "x"), ("b", "y"), ("c", "x")):
        await done(client.create_model(f"{prefix}-{suffix}", tags={"team": team}))
    found = await every(client.list_models(f"{prefix}-*", tags={"team": "x"}, page_size=1))
    assert [m.name for m in found] == [f"{prefix}-a", f"{prefix}-c"]
    pages = [r for r in recorder.to("/v1/models") if r.method == "GET"]
    assert [r.url.params.get("page_token") is None for r in pages] == [True, False]


async def test_audit_iterates_every_page(make_client: MakeClient, recorder: Recorder) -> None:
    client = make_client(transport=recorder.transport)
    name = await new_model(client, versions=3)
    await done(client.set_stage(name, 1, "Staging"))
    rows = await every(client.audit(model=name, page_size=2))
    assert [r.action for r in rows] == [
        "ModelRegistered",
        "VersionRegistered",
        "VersionRegistered",
        "VersionRegistered",
        "StageChanged",
    ]
    assert [r.position for r in rows] == sorted(r.position for r in rows)
    assert {r.model for r in rows} == {name}
    assert len(recorder.to("/v1/audit")) == 3  # pages of 2, 2 and 1
    only = await every(client.audit(model=name, version=1, actions=["StageChanged"]))
    assert [(r.action, r.version) for r in only] == [("StageChanged", 1)]


# Stages, aliases and approvals -------------------------------------------------------------------


async def test_set_stage_can_archive_the_stages_other_versions(client: AnyClient) -> None:
    name = await new_model(client, versions=2)
    await done(client.set_stage(name, 1, "Production"))
    moved = await done(client.set_stage(name, 2, "Production", archive_existing=True))
    assert moved.stage == "Production"
    assert (await done(client.get_version(name, 1))).stage == "Archived"


async def test_an_alias_is_set_read_and_deleted(client: AnyClient) -> None:
    name = await new_model(client, versions=2)
    named = await done(client.set_alias(name, "champion", 2))
    assert named.version == 2 and named.aliases == ["champion"]
    assert (await done(client.get_alias(name, "champion"))).version == 2
    assert (await done(client.get_model(name))).aliases == {"champion": 2}
    assert (await done(client.delete_alias(name, "champion"))).deleted
    with pytest.raises(NotFound, match="champion"):
        await done(client.get_alias(name, "champion"))


async def test_a_transition_request_without_a_policy_applies_at_once(client: AnyClient) -> None:
    name = await new_model(client, versions=1)
    request = await done(client.request_transition(name, 1, "Staging", comment="ready"))
    assert (request.state, request.stage, request.comment, request.missing) == (
        "applied",
        "Staging",
        "ready",
        [],
    )
    assert (await done(client.get_version(name, 1))).stage == "Staging"
    assert (await done(client.get_request(request.request_id))).state == "applied"


@pytest.fixture
async def guarded_alias(make_client: MakeClient) -> AsyncIterator[str]:
    """An alias that a promotion policy guards with one admin's approval, for the test only."""
    admin = make_client()
    alias = unique("guarded").replace("-", "_")
    await done(admin.apply_policy({"aliases": {alias: {"approvals": 1, "approver_role": "admin"}}}))
    yield alias
    await done(admin.apply_policy({}))


async def test_a_request_under_a_policy_waits_for_an_approval(
    make_client: MakeClient, guarded_alias: str
) -> None:
    rita = make_client(headers={"X-Registrar-Actor": "rita"})
    ann = make_client(headers={"X-Registrar-Actor": "ann"})
    name = await new_model(rita, versions=1)
    request = await done(rita.request_transition(name, 1, alias=guarded_alias))
    assert request.state == "pending" and request.alias == guarded_alias
    assert request.missing and request.requested_by == "rita"
    pending = await every(rita.approvals("pending", model=name))
    assert [r.request_id for r in pending] == [request.request_id]
    approved = await done(ann.approve(request.request_id, comment="fine"))
    assert approved.state == "applied"
    assert [(a.by, a.comment) for a in approved.approvals] == [("ann", "fine")]
    assert (await done(ann.get_alias(name, guarded_alias))).version == 1
    assert await every(rita.approvals("pending", model=name)) == []


async def test_a_request_is_rejected_or_cancelled(
    make_client: MakeClient, guarded_alias: str
) -> None:
    rita = make_client(headers={"X-Registrar-Actor": "rita"})
    ann = make_client(headers={"X-Registrar-Actor": "ann"})
    name = await new_model(rita, versions=1)
    first = await done(rita.request_transition(name, 1, alias=guarded_alias))
    rejected = await done(ann.reject(first.request_id, "not yet"))
    assert (rejected.state, rejected.closed_by, rejected.closed_comment) == (
        "rejected",
        "ann",
        "not yet",
    )
    second = await done(rita.request_transition(name, 1, alias=guarded_alias))
    assert second.request_id != first.request_id
    assert (await done(rita.cancel(second.request_id))).state == "cancelled"
    states = [r.state for r in await every(rita.approvals(model=name))]
    assert states == ["rejected", "cancelled"]


# Lineage and history -----------------------------------------------------------------------------


async def test_lineage_and_impact_follow_datasets_and_parents(client: AnyClient) -> None:
    name = unique("lineage")
    dataset = unique("events")
    await done(client.create_model(name))
    trained_on = [{"name": dataset, "version": "1"}]
    await done(client.register_version(name, "s3://1", datasets=trained_on))
    await done(client.register_version(name, "s3://2", parents=[{"model": name, "version": 1}]))
    await done(client.set_stage(name, 2, "Production"))
    graph = await done(client.lineage(f"version:{name}/2", direction="upstream"))
    edges = {(e.from_, e.to, e.kind) for e in graph.edges}
    assert edges == {
        (f"version:{name}/2", f"version:{name}/1", "derived_from"),
        (f"version:{name}/1", f"dataset:{dataset}@1", "trained_on"),
    }
    node = next(n for n in graph.nodes if n.id == f"dataset:{dataset}@1")
    assert node.kind == "dataset" and (node.model_extra or {}).get("name") == dataset
    hit = await done(client.impact(f"dataset:{dataset}@1"))
    assert [v.id for v in hit.versions] == [f"version:{name}/1", f"version:{name}/2"]
    assert hit.in_production == [f"version:{name}/2"]


async def test_as_of_answers_what_each_stage_held_at_an_instant(client: AnyClient) -> None:
    name = await new_model(client, versions=1)
    await done(client.set_stage(name, 1, "Staging"))
    await done(client.set_alias(name, "champion", 1))
    await done(client.set_stage(name, 1, "Production"))
    timeline = await done(client.timeline(name, 1))
    stages = [(e.kind, e.stage or e.alias) for e in timeline.timeline]
    assert stages == [
        ("stage", "None"),
        ("stage", "Staging"),
        ("alias", "champion"),
        ("stage", "Production"),
    ]
    in_staging = timeline.timeline[1].valid_from
    assert (await done(client.as_of(in_staging, name)))["Staging"] == [1]
    assert (await done(client.as_of(in_staging.isoformat(), name)))["Production"] == []
    later = datetime.now(UTC) + timedelta(seconds=1)
    now = await done(client.as_of(later, name))
    assert now["Production"] == [1] and now["Staging"] == []
    assert await done(client.aliases_as_of(later, name)) == {"champion": 1}
    assert await done(client.aliases_as_of(in_staging, name)) == {}
    holders = await done(client.stage_holders("Production", later))
    assert [(h.model, h.version) for h in holders if h.model == name] == [(name, 1)]


async def test_whoami_is_the_named_actor_when_authentication_is_off(
    make_client: MakeClient,
) -> None:
    me = await done(make_client(headers={"X-Registrar-Actor": "dev"}).whoami())
    assert (me.user, me.role, me.authenticated) == ("dev", "admin", False)


# Refusals ----------------------------------------------------------------------------------------


async def test_a_missing_model_raises_not_found_with_the_servers_message(client: AnyClient) -> None:
    name = unique("missing")
    with pytest.raises(NotFound) as refused:
        await done(client.get_model(name))
    assert isinstance(refused.value, ClientError)
    assert refused.value.status == 404 and refused.value.code == "not_found"
    assert refused.value.message == f"no model named {name!r}"


async def test_a_missing_version_raises_not_found(client: AnyClient) -> None:
    name = await new_model(client, versions=1)
    with pytest.raises(NotFound, match="has no version 7") as refused:
        await done(client.get_version(name, 7))
    assert refused.value.status == 404


async def test_listing_the_versions_of_a_missing_model_raises_not_found(client: AnyClient) -> None:
    with pytest.raises(NotFound) as refused:
        await every(client.list_versions(unique("missing")))
    assert refused.value.status == 404 and "no model named" in refused.value.message


async def test_a_taken_name_raises_conflict(client: AnyClient) -> None:
    name = await new_model(client)
    with pytest.raises(Conflict) as refused:
        await done(client.create_model(name))
    assert refused.value.status == 409 and refused.value.code == "conflict"
    assert refused.value.message == f"a model named {name!r} already exists"


async def test_an_invalid_name_raises_invalid_request_naming_the_field(client: AnyClient) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await done(client.create_model("has/slash"))
    assert refused.value.status == 422 and "must not contain '/'" in refused.value.message
    assert [f["field"] for f in refused.value.fields] == ["body.name"]


async def test_a_reserved_alias_raises_invalid_request(client: AnyClient) -> None:
    name = await new_model(client, versions=1)
    with pytest.raises(InvalidRequest, match="reserved") as refused:
        await done(client.set_alias(name, "latest", 1))
    assert refused.value.status == 422
