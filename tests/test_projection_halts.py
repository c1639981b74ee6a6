"""A read model that meets an event it cannot apply (here: text PostgreSQL refuses, stored before
the contracts refused it) applies every event before it, then stops on that event with a clear
status instead of retrying it for ever: queries waiting for it are told why at once, and the read
models the event does not trouble carry on. Here fed from the store (`registrar serve`); the same
on Kafka (`registrar up`) in tests/bus/test_projection_halts_on_kafka.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx

from registrar.contracts.identifiers import uuid7
from registrar.registry import Registry
from registrar.store.event_store import NewEvent, PostgresEventStore, StreamHead


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid4().hex[:8]}"


async def append_poison(store: PostgresEventStore, name: str) -> int:
    """A tag holding NUL appended straight to the store (as a release before the contracts'
    check would have let it in), then a good event after it; the poison's position."""
    stream_id = await store.resolve_name(name)
    assert stream_id is not None
    last = (await store.read_stream(stream_id))[-1]
    events = [
        NewEvent(uuid7(), "ModelTagSet", {"key": key, "value": value}, datetime.now(UTC), "old")
        for key, value in (("bad", "a\u0000b"), ("good", "value"))
    ]
    appended = await store.append(stream_id, StreamHead(last.stream_version, last.hash), events)
    assert appended[0].position is not None
    return appended[0].position


async def projection_status(api: httpx.AsyncClient, name: str) -> dict[str, Any]:
    answer = await api.get("/v1/projections")
    assert answer.status_code == 200, answer.text
    return next(p for p in answer.json()["projections"] if p["name"] == name)


async def test_a_projection_following_the_store_stops_on_the_event_and_says_why(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    before, after = unique("before"), unique("after")
    assert (await api.post("/v1/models", json={"name": before})).status_code == 201
    poison = await append_poison(registry.store, before)

    listed = await api.get("/v1/models", params={"min_position": poison})

    assert listed.status_code == 503, listed.text
    message = listed.json()["error"]["message"]
    assert "current_state read model has stopped" in message
    assert f"position {poison}" in message and "ModelTagSet" in message
    status = await projection_status(api, "current_state")
    assert status["halted"]["position"] == poison
    # Writes still work, answered from the stream; read models the event does not trouble go on.
    assert (await api.post("/v1/models", json={"name": after})).status_code == 201
    created = await api.post(f"/v1/models/{after}/versions", json={"source": "s3://m"})
    assert created.status_code == 201
    lineage = await api.get(
        "/v1/lineage",
        params={"node": f"version:{after}/1", "min_position": created.json()["position"]},
    )
    assert lineage.status_code == 200, lineage.text
    assert (await projection_status(api, "lineage"))["halted"] is None
