"""Point-in-time history over HTTP on a real PostgreSQL: a model's stages and aliases, every
model's holder of a stage, and a version's timeline, asked at instants between real transitions
(taken from the events' recorded times, never from sleeps); renames, deletions, bad instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import text

from registrar.contracts.values import Stage
from registrar.projections.stage_history import STAGE_HOLDERS
from registrar.registry import Registry

pytestmark = pytest.mark.asyncio(loop_scope="session")

TICK = timedelta(microseconds=1)
COMMAND_TIME = text(
    "SELECT min(recorded_at) FROM events WHERE causation_id ="
    " (SELECT causation_id FROM events WHERE position = :p)"
)
"""When a command took effect: its first event's recorded time (its events are microseconds
apart; the history dates them all from the first)."""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid4().hex[:8]}"


class Model:
    """A model driven through the API, remembering when each of its commands was recorded."""

    def __init__(self, api: httpx.AsyncClient, registry: Registry, name: str) -> None:
        self.api, self.registry, self.name = api, registry, name
        self.position = 0

    async def act(self, method: str, path: str, **body: Any) -> datetime:
        """Run a command on this model; the time its event was recorded."""
        response = await self.api.request(
            method, f"/v1/models/{self.name}{path}", json=body or None
        )
        assert response.status_code in (200, 201), response.text
        self.position = int(response.headers["X-Registrar-Position"])
        async with self.registry.engine.connect() as conn:
            recorded = await conn.execute(COMMAND_TIME, {"p": self.position})
            return recorded.scalar_one()  # type: ignore[no-any-return]

    async def get(self, path: str, at: datetime | None = None, **params: Any) -> Any:
        if at is not None:
            params["as_of"] = at.isoformat()
        if self.position:
            params["min_position"] = self.position
        response = await self.api.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def stages(self, at: datetime | None = None, name: str | None = None) -> Any:
        return await self.get(f"/v1/models/{name or self.name}/stages", at)

    async def aliases(self, at: datetime | None = None) -> Any:
        return await self.get(f"/v1/models/{self.name}/aliases", at)

    async def in_production(self, at: datetime) -> list[Any]:
        holders = await self.get("/v1/stages/Production", at)
        return [(h["model"], h["version"], h["since"]) for h in holders if h["model"] == self.name]


async def new_model(api: httpx.AsyncClient, registry: Registry, versions: int) -> Model:
    name = unique("churn")
    created = await api.post("/v1/models", json={"name": name})
    assert created.status_code == 201
    model = Model(api, registry, name)
    for i in range(versions):
        await model.act("POST", "/versions", source=f"s3://m/{i}")
    return model


def stages(
    none: list[str] | None = None,
    staging: list[str] | None = None,
    production: list[str] | None = None,
    archived: list[str] | None = None,
) -> dict[str, list[str]]:
    return {
        "None": none or [],
        "Staging": staging or [],
        "Production": production or [],
        "Archived": archived or [],
    }


def z(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def test_stages_as_of_instants_between_transitions(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    model = await new_model(api, registry, versions=2)
    staged = await model.act("POST", "/versions/1/stage", stage="Staging")
    produced = await model.act("POST", "/versions/1/stage", stage="Production")
    second = await model.act("POST", "/versions/2/stage", stage="Staging")
    replaced = await model.act(
        "POST", "/versions/2/stage", stage="Production", archive_existing=True
    )

    assert await model.stages(staged - TICK) == stages(none=["1", "2"])
    assert await model.stages(staged) == stages(none=["2"], staging=["1"])
    assert await model.stages(produced) == stages(none=["2"], production=["1"])
    assert await model.stages(second) == stages(staging=["2"], production=["1"])
    assert await model.stages(replaced - TICK) == stages(staging=["2"], production=["1"])
    # Archive-existing closes version 1's Production interval as version 2's opens.
    assert await model.stages(replaced) == stages(production=["2"], archived=["1"])
    assert await model.stages() == await model.stages(replaced + timedelta(days=1))

    assert await model.in_production(produced - TICK) == []
    assert await model.in_production(replaced - TICK) == [(model.name, "1", z(produced))]
    assert await model.in_production(replaced) == [(model.name, "2", z(replaced))]


async def test_every_models_production_version_at_an_instant(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    first = await new_model(api, registry, versions=1)
    second = await new_model(api, registry, versions=2)
    at_first = await first.act("POST", "/versions/1/stage", stage="Production")
    at_second = await second.act("POST", "/versions/2/stage", stage="Production")
    holders = await second.get("/v1/stages/production", at_second)  # any case, as MLflow
    # By model name, then by version as a number (10 after 9).
    assert holders == sorted(holders, key=lambda h: (h["model"], int(h["version"])))
    ours = [h for h in holders if h["model"] in (first.name, second.name)]
    assert ours == sorted(
        [
            {"model": first.name, "version": "1", "since": z(at_first)},
            {"model": second.name, "version": "2", "since": z(at_second)},
        ],
        key=lambda h: h["model"],
    )


async def test_aliases_as_of_follow_moves_and_removals(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    model = await new_model(api, registry, versions=3)
    set_at = await model.act("PUT", "/aliases/champion", version=1)
    challenger = await model.act("PUT", "/aliases/challenger", version=3)
    moved = await model.act("PUT", "/aliases/champion", version=2)
    removed = await model.act("DELETE", "/aliases/challenger")

    assert await model.aliases(set_at - TICK) == {}
    assert await model.aliases(set_at) == {"champion": "1"}
    assert await model.aliases(challenger) == {"challenger": "3", "champion": "1"}
    assert await model.aliases(moved) == {"challenger": "3", "champion": "2"}
    assert await model.aliases(removed) == {"champion": "2"}
    assert await model.aliases() == {"champion": "2"}


async def test_a_deleted_version_leaves_its_stage_and_aliases(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    model = await new_model(api, registry, versions=2)
    await model.act("POST", "/versions/2/stage", stage="Staging")
    await model.act("PUT", "/aliases/candidate", version=2)
    deleted = await model.act("DELETE", "/versions/2")

    assert await model.stages(deleted - TICK) == stages(none=["1"], staging=["2"])
    assert await model.aliases(deleted - TICK) == {"candidate": "2"}
    assert await model.stages(deleted) == stages(none=["1"])
    assert await model.aliases(deleted) == {}

    timeline = await model.get(f"/v1/models/{model.name}/versions/2/timeline")
    assert timeline["model"] == model.name and timeline["version"] == "2"
    entries = [
        (e["kind"], e.get("stage") or e.get("alias"), e["valid_to"] is None, e["ended_by"])
        for e in timeline["timeline"]
    ]
    assert entries == [
        ("stage", "None", False, "StageChanged"),
        ("stage", "Staging", False, "VersionDeleted"),
        ("alias", "candidate", False, "AliasDeleted"),
    ]
    assert timeline["timeline"][1]["valid_to"] == z(deleted)


async def test_a_renamed_models_history_reads_under_its_new_name(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    model = await new_model(api, registry, versions=1)
    old = model.name
    produced = await model.act("POST", "/versions/1/stage", stage="Production")
    await model.act("PUT", "/aliases/champion", version=1)
    new = unique("renamed")
    renamed = await model.act("PATCH", "", name=new)
    model.name = new

    assert await model.stages(produced, name=new) == stages(production=["1"])
    assert await model.stages(produced, name=old) == stages(production=["1"])
    assert await model.stages(produced - TICK, name=new) == stages(none=["1"])
    assert await model.aliases(renamed - TICK) == {"champion": "1"}
    # Every holder is listed under the model's current name, even before it was renamed.
    assert await model.in_production(produced) == [(new, "1", z(produced))]


async def test_a_name_taken_again_answers_for_the_model_that_held_it_at_the_instant(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    first = await new_model(api, registry, versions=1)
    produced = await first.act("POST", "/versions/1/stage", stage="Production")
    await first.act("PUT", "/aliases/champion", version=1)
    deleted = await first.act("DELETE", "")
    # A new model takes the released name; as-of questions by that name follow its holders.
    second = Model(api, registry, first.name)
    created = await api.post("/v1/models", json={"name": first.name})
    assert created.status_code == 201
    for source in ("s3://b/1", "s3://b/2"):
        await second.act("POST", "/versions", source=source)
    staged = await second.act("POST", "/versions/2/stage", stage="Staging")

    assert await second.stages(produced) == stages(production=["1"])  # the first model's
    assert await second.aliases(deleted - TICK) == {"champion": "1"}
    assert await second.stages(deleted) == stages()  # deleted; the second not yet made
    assert await second.stages(staged) == stages(none=["1"], staging=["2"])
    assert await second.stages() == stages(none=["1"], staging=["2"])


async def test_a_deleted_model_held_nothing_after_its_deletion(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    model = await new_model(api, registry, versions=1)
    produced = await model.act("POST", "/versions/1/stage", stage="Production")
    await model.act("PUT", "/aliases/champion", version=1)
    deleted = await model.act("DELETE", "")
    assert await model.stages(deleted - TICK) == stages(production=["1"])
    assert await model.stages(deleted) == stages()
    assert await model.aliases(deleted) == {}
    assert await model.in_production(deleted - TICK) == [(model.name, "1", z(produced))]
    assert await model.in_production(deleted) == []


@pytest.mark.parametrize("stage", list(Stage))
async def test_every_models_stage_query_uses_its_stages_range_index(
    registry: Registry, stage: Stage
) -> None:
    # The query the API runs, as it runs it: each stage's partial index is chosen only when the
    # planner can see the stage in the query.
    query = STAGE_HOLDERS[stage]
    async with registry.engine.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))
        plan = await conn.execute(text(f"EXPLAIN {query.text}"), {"at": datetime.now(UTC)})
        assert f"stage_history_{stage.value.lower()}_at" in "\n".join(row[0] for row in plan)


@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        ("/v1/models/{name}/stages", {"as_of": "yesterday"}, 422, "RFC 3339"),
        ("/v1/models/{name}/stages", {"as_of": "2026-03-03"}, 422, "RFC 3339"),
        ("/v1/models/{name}/aliases", {"as_of": "2026-03-03T14:00:00"}, 422, "zone offset"),
        ("/v1/models/{name}/aliases", {"as_of": "2026-02-30T14:00:00Z"}, 422, "as_of"),
        ("/v1/stages/Prod", {}, 422, "unknown stage"),
        ("/v1/stages/Production", {"as_of": "1700000000"}, 422, "RFC 3339"),
        ("/v1/models/never-{name}/stages", {}, 404, "no model was ever named"),
        ("/v1/models/{name}/versions/9/timeline", {}, 404, "has no version 9"),
        ("/v1/models/{name}/versions/0/timeline", {}, 422, "version"),
    ],
)
async def test_bad_questions_are_answered_with_what_is_wrong(
    api: httpx.AsyncClient,
    registry: Registry,
    path: str,
    params: dict[str, str],
    status: int,
    says: str,
) -> None:
    model = await new_model(api, registry, versions=1)
    response = await api.get(path.format(name=model.name), params=params)
    assert response.status_code == status, response.text
    assert says in response.json()["error"]["message"]
