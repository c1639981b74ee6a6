"""The audit trail over HTTP on a real PostgreSQL: a row per event with a readable summary, from
real commands; filters, paging that stays stable while events arrive, refused attempts and
unknown event kinds, and the JSONL / CSV exports (API and CLI) read back."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from registrar_process import BIN, registrar_env

from registrar.contracts.identifiers import uuid7
from registrar.registry import Registry
from registrar.store.event_store import NewEvent, StreamHead

pytestmark = pytest.mark.asyncio(loop_scope="session")


def at(rfc3339: str) -> datetime:
    return datetime.fromisoformat(rfc3339)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid4().hex[:8]}"


async def act(
    api: httpx.AsyncClient, method: str, path: str, actor: str = "alice", **body: Any
) -> int:
    """Send a command as `actor`; return the position of the event it wrote."""
    response = await api.request(
        method, path, json=body or None, headers={"X-Registrar-Actor": actor}
    )
    assert response.status_code in (200, 201), response.text
    return int(response.headers["X-Registrar-Position"])


async def audit(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every matching row, following the pages."""
    rows: list[dict[str, Any]] = []
    token = None
    while True:
        query = {**params, **({"page_token": token} if token else {})}
        response = await api.get("/v1/audit", params=query)
        assert response.status_code == 200, response.text
        rows += response.json()["events"]
        token = response.json()["next_page_token"]
        if token is None:
            return rows


async def promoted_model(api: httpx.AsyncClient) -> tuple[str, int]:
    """A model taken through a typical life by alice and bob; its name and last position."""
    name = unique("churn")
    models = f"/v1/models/{name}"
    await act(api, "POST", "/v1/models", name=name)
    for i in (1, 2, 3):
        await act(api, "POST", f"{models}/versions", source=f"s3://m/{i}", run_id=f"r{i}")
    await act(api, "POST", f"{models}/versions/2/stage", stage="Production")
    await act(api, "PUT", f"{models}/aliases/champion", actor="bob", version=2)
    await act(api, "PUT", f"{models}/aliases/champion", actor="bob", version=3)
    await act(api, "PUT", f"{models}/versions/3/tags/ready", actor="bob", value="yes")
    body = {"stage": "Production", "archive_existing": True}
    await act(api, "POST", f"{models}/versions/3/stage", **body)
    last = await act(api, "DELETE", f"{models}/versions/1", actor="bob")
    return name, last


async def test_every_command_leaves_a_row_saying_who_did_what(api: httpx.AsyncClient) -> None:
    name, last = await promoted_model(api)
    rows = await audit(api, model=name, min_position=last)
    assert [(r["actor"], r["action"], r["version"], r["summary"]) for r in rows] == [
        ("alice", "ModelRegistered", None, f"registered model {name}"),
        ("alice", "VersionRegistered", 1, "registered version 1 from s3://m/1 (run r1)"),
        ("alice", "VersionRegistered", 2, "registered version 2 from s3://m/2 (run r2)"),
        ("alice", "VersionRegistered", 3, "registered version 3 from s3://m/3 (run r3)"),
        ("alice", "StageChanged", 2, "moved 2 from None to Production"),
        ("bob", "AliasSet", 2, "set alias champion → 2"),
        ("bob", "AliasSet", 3, "set alias champion → 3 (was 2)"),
        ("bob", "VersionTagSet", 3, "set tag ready=yes on version 3"),
        ("alice", "StageChanged", 3, "moved 3 from None to Production, archived 2"),
        ("alice", "StageChanged", 2, "archived 2 (was Production), replaced by 3"),
        ("bob", "VersionDeleted", 1, "deleted version 1"),
    ]
    assert {r["model"] for r in rows} == {name}
    assert len({r["model_id"] for r in rows}) == 1
    positions = [r["position"] for r in rows]
    assert positions == sorted(positions) and positions[-1] == last
    assert all(r["event_id"] and r["stream_id"] == rows[0]["model_id"] for r in rows)


async def test_a_correlation_id_is_on_the_rows_of_the_request(api: httpx.AsyncClient) -> None:
    name = unique("corr")
    correlation = str(uuid4())
    created = await api.post(
        "/v1/models", json={"name": name}, headers={"X-Correlation-Id": correlation}
    )
    position = created.json()["position"]
    [row] = await audit(api, model=name, min_position=position)
    assert row["correlation_id"] == correlation
    assert row["recorded_at"].endswith("Z")


async def test_filters_by_actor_version_action_and_time(api: httpx.AsyncClient) -> None:
    name, last = await promoted_model(api)
    everything = await audit(api, model=name, min_position=last)

    bobs = await audit(api, model=name, actor="bob")
    assert bobs == [r for r in everything if r["actor"] == "bob"] and len(bobs) == 4

    version_3 = await audit(api, model=name, version=3)
    assert [r["action"] for r in version_3] == [
        "VersionRegistered",
        "AliasSet",
        "VersionTagSet",
        "StageChanged",
    ]

    moves = await audit(api, model=name, action=["StageChanged", "AliasSet"])
    assert [r["action"] for r in moves] == ["StageChanged", "AliasSet", "AliasSet"] + [
        "StageChanged"
    ] * 2

    # since is inclusive, until exclusive, both on the recorded time.
    fifth, eighth = everything[4]["recorded_at"], everything[7]["recorded_at"]
    window = await audit(api, model=name, since=fifth, until=eighth)
    expected = [r for r in everything if at(fifth) <= at(r["recorded_at"]) < at(eighth)]
    assert window == expected and everything[4] in window and everything[7] not in window


async def test_a_renamed_model_is_found_under_its_old_and_new_names(
    api: httpx.AsyncClient,
) -> None:
    old, new = unique("before"), unique("after")
    await act(api, "POST", "/v1/models", name=old)
    await act(api, "POST", f"/v1/models/{old}/versions", source="s3://m/1")
    await act(api, "PATCH", f"/v1/models/{old}", name=new)
    last = await act(api, "PUT", f"/v1/models/{new}/tags/team", value="growth")

    by_new = await audit(api, model=new, min_position=last)
    by_old = await audit(api, model=old)
    assert by_new == by_old
    assert [(r["model"], r["summary"]) for r in by_new] == [
        (old, f"registered model {old}"),
        (old, "registered version 1 from s3://m/1"),
        (new, f"renamed {old} → {new}"),
        (new, "set tag team=growth"),
    ]


async def test_a_name_held_by_two_models_in_turn_finds_both_each_with_its_id(
    api: httpx.AsyncClient,
) -> None:
    name = unique("twice")
    await act(api, "POST", "/v1/models", name=name)
    await act(api, "DELETE", f"/v1/models/{name}")
    await act(api, "POST", "/v1/models", name=name, actor="bob")  # the released name, again
    last = await act(api, "PUT", f"/v1/models/{name}/tags/round", actor="bob", value="2")

    rows = await audit(api, model=name, min_position=last)
    assert [(r["actor"], r["action"]) for r in rows] == [
        ("alice", "ModelRegistered"),
        ("alice", "ModelDeleted"),
        ("bob", "ModelRegistered"),
        ("bob", "ModelTagSet"),
    ]
    first, second = rows[0]["model_id"], rows[2]["model_id"]
    assert first != second
    assert [r["model_id"] for r in rows] == [first, first, second, second]


async def test_pages_stay_stable_while_new_events_arrive(api: httpx.AsyncClient) -> None:
    name = unique("paged")
    await act(api, "POST", "/v1/models", name=name)
    for i in range(4):
        last = await act(api, "POST", f"/v1/models/{name}/versions", source=f"s3://m/{i}")
    first = await api.get("/v1/audit", params={"model": name, "page_size": 2, "min_position": last})
    page = first.json()
    seen = [r["position"] for r in page["events"]]
    # Events written between pages land after the pages already read, never inside them.
    arrived = [
        await act(api, "PUT", f"/v1/models/{name}/tags/k{i}", value=str(i)) for i in range(3)
    ]
    token = page["next_page_token"]
    while token:
        query = {"model": name, "page_size": 2, "page_token": token, "min_position": arrived[-1]}
        page = (await api.get("/v1/audit", params=query)).json()
        seen += [r["position"] for r in page["events"]]
        token = page["next_page_token"]
    assert len(seen) == len(set(seen)) == 5 + 3
    assert seen == sorted(seen) and seen[-3:] == arrived


async def append_foreign_events(registry: Registry, model: str) -> list[int]:
    """A refused attempt (as access control records one) and an event of a kind this build does
    not know, each in a stream of its own."""
    refusal = NewEvent(
        event_id=uuid7(),
        type="AccessRefused",
        payload={
            "actor": "mallory",
            "action": "TransitionStage",
            "reason": "a viewer may not change stages",
            "method": "POST",
            "path": f"/v1/models/{model}/versions/1/stage",
            "status": 403,
            "model": model,
        },
        recorded_at=datetime.now(UTC),
        actor="mallory",
    )
    unknown = NewEvent(
        event_id=uuid7(),
        type="PolicyAmended",
        payload={"stage": "Production", "approvals": 2, "nested": {"ignored": True}},
        recorded_at=datetime.now(UTC),
        actor="carol",
    )
    positions = []
    for stream, event in ((f"refusal:{uuid7()}", refusal), (f"policy:{uuid7()}", unknown)):
        [stored] = await registry.store.append(stream, StreamHead(), [event])
        assert stored.position is not None
        positions.append(stored.position)
    return positions


async def test_refused_attempts_and_unknown_events_are_rows_too(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    name = unique("guarded")
    await act(api, "POST", "/v1/models", name=name)
    refused_at, unknown_at = await append_foreign_events(registry, name)

    [refused] = await audit(api, action="AccessRefused", model=name, min_position=refused_at)
    assert refused["actor"] == "mallory" and refused["reason"] == "a viewer may not change stages"
    assert refused["model"] == name and refused["model_id"] is not None
    assert refused["summary"] == (
        f"refused TransitionStage (POST /v1/models/{name}/versions/1/stage):"
        " a viewer may not change stages"
    )
    assert refused in await audit(api, model=name)

    [unknown] = await audit(api, actor="carol", min_position=unknown_at)
    assert unknown["action"] == "PolicyAmended" and unknown["model"] is None
    assert unknown["summary"] == "PolicyAmended: approvals=2, stage=Production"


def parsed_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def as_csv_cells(row: dict[str, Any]) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in row.items()}


async def test_exports_hold_the_same_rows_as_the_api(api: httpx.AsyncClient) -> None:
    name, last = await promoted_model(api)
    rows = await audit(api, model=name, min_position=last)

    jsonl = await api.get("/v1/audit", params={"model": name, "format": "jsonl"})
    assert jsonl.status_code == 200
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line) for line in jsonl.text.splitlines()] == rows

    exported = await api.get("/v1/audit/export", params={"model": name, "format": "csv"})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert parsed_csv(exported.text) == [as_csv_cells(r) for r in rows]

    bob_jsonl = await api.get("/v1/audit/export", params={"model": name, "actor": "bob"})
    assert [json.loads(line) for line in bob_jsonl.text.splitlines()] == [
        r for r in rows if r["actor"] == "bob"
    ]


async def test_the_cli_streams_an_export_to_a_file(
    api: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    name, last = await promoted_model(api)
    rows = await audit(api, model=name, min_position=last)
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url)
    output = tmp_path / "audit.csv"
    command = [str(BIN / "registrar"), "audit", "export", "--format", "csv", "--model", name]
    done = subprocess.run(
        [*command, "--output", str(output)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert parsed_csv(output.read_text(encoding="utf-8")) == [as_csv_cells(r) for r in rows]
    assert f"{len(rows)} rows" in done.stderr

    since = rows[5]["recorded_at"]
    to_stdout = subprocess.run(
        [str(BIN / "registrar"), "audit", "export", "--model", name, "--actor", "bob"]
        + ["--since", since],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert to_stdout.returncode == 0, to_stdout.stderr
    expected = [r for r in rows if r["actor"] == "bob" and at(r["recorded_at"]) >= at(since)]
    assert [json.loads(line) for line in to_stdout.stdout.splitlines()] == expected

    refused = subprocess.run(
        [str(BIN / "registrar"), "audit", "export", "--since", "last tuesday"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and "RFC 3339" in refused.stderr

    backwards = subprocess.run(
        [str(BIN / "registrar"), "audit", "export", "--since", "2026-03-03T14:00:00Z"]
        + ["--until", "2026-03-03T13:00:00+00:00"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert backwards.returncode == 2 and "must be before until" in backwards.stderr


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-03-03"}, "until"),
        ({"since": "2026-03-03T14:00:00"}, "since"),  # no zone offset
        ({"since": "2026-03-03T14:00:00Z", "until": "2026-03-03T13:00:00Z"}, "since"),
        ({"version": "0"}, "version"),
        ({"format": "xml"}, "format"),
        ({"page_token": "not-a-token"}, "page_token"),
        ({"min_position": "999999999"}, "min_position"),
    ],
)
async def test_bad_queries_are_refused_with_what_is_wrong(
    api: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await api.get("/v1/audit", params=params)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["message"]
