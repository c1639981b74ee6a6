"""The /v1 API over HTTP (in-process ASGI) on a real PostgreSQL: the resource paths other teams
script against, read-your-writes, and bad input answered with a 4xx that changes nothing."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import text

from registrar.registry import Registry

pytestmark = pytest.mark.asyncio(loop_scope="session")

DIGEST = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid4().hex[:8]}"


async def event_count(registry: Registry) -> int:
    async with registry.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM events"))).scalar_one())


async def new_model(api: httpx.AsyncClient, versions: int = 0, **body: object) -> str:
    name = unique("model")
    assert (await api.post("/v1/models", json={"name": name, **body})).status_code == 201
    for i in range(versions):
        created = await api.post(f"/v1/models/{name}/versions", json={"source": f"s3://m/{i}"})
        assert created.status_code == 201
    return name


async def test_registering_a_model_answers_201_with_the_model_and_its_position(
    api: httpx.AsyncClient,
) -> None:
    name = unique("churn")
    response = await api.post(
        "/v1/models", json={"name": name, "description": "churn", "tags": {"team": "growth"}}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == name and body["description"] == "churn"
    assert body["tags"] == {"team": "growth"} and body["latest_version"] == 0
    assert body["position"] >= 1
    assert response.headers["X-Registrar-Position"] == str(body["position"])
    fetched = (await api.get(f"/v1/models/{name}")).json()
    assert fetched == {k: v for k, v in body.items() if k != "position"}


async def test_a_version_carries_everything_it_was_registered_with(api: httpx.AsyncClient) -> None:
    name = await new_model(api)
    await new_model(api)  # another model, to be a parent's home
    parent_model = await new_model(api, versions=1)
    body = {
        "source": "s3://models/churn/abc/model",
        "run_id": "abc",
        "digest": DIGEST,
        "size": 48213,
        "metrics": {"auc": 0.91},
        "params": {"n_estimators": "200"},
        "datasets": [{"name": "customers", "version": "v2.1", "uri": "s3://d/v2.1", "digest": ""}],
        "parents": [{"model": parent_model, "version": 1, "relation": "fine_tuned_from"}],
        "tags": {"framework": "sklearn"},
        "description": "first",
    }
    response = await api.post(f"/v1/models/{name}/versions", json=body)
    assert response.status_code == 201
    created = response.json()
    assert created["version"] == 1 and created["stage"] == "None" and created["model"] == name
    for key, value in body.items():
        assert created[key] == value, key
    assert (await api.get(f"/v1/models/{name}/versions/1")).json() == {
        k: v for k, v in created.items() if k != "position"
    }


async def test_a_parent_that_does_not_exist_is_refused(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    name = await new_model(api)
    before = await event_count(registry)
    response = await api.post(
        f"/v1/models/{name}/versions",
        json={"source": "s3://x", "parents": [{"model": "no-such-model", "version": 1}]},
    )
    assert response.status_code == 422
    assert "no-such-model" in response.json()["error"]["message"]
    assert await event_count(registry) == before


async def test_promotion_with_archive_existing_archives_the_previous_holder(
    api: httpx.AsyncClient,
) -> None:
    name = await new_model(api, versions=2)
    first = await api.post(f"/v1/models/{name}/versions/1/stage", json={"stage": "production"})
    assert first.status_code == 200 and first.json()["stage"] == "Production"
    second = await api.post(
        f"/v1/models/{name}/versions/2/stage",
        json={"stage": "Production", "archive_existing": True},
    )
    assert second.json()["stage"] == "Production"
    assert second.json()["position"] > first.json()["position"]
    assert (await api.get(f"/v1/models/{name}/versions/1")).json()["stage"] == "Archived"
    listed = (await api.get(f"/v1/models/{name}/versions", params={"stage": "Production"})).json()
    assert [v["version"] for v in listed["versions"]] == [2]
    archived = (await api.get(f"/v1/models/{name}/versions", params={"stage": "Archived"})).json()
    assert [v["version"] for v in archived["versions"]] == [1]


async def test_an_alias_has_one_holder_and_moves(api: httpx.AsyncClient) -> None:
    name = await new_model(api, versions=2)
    await api.put(f"/v1/models/{name}/aliases/champion", json={"version": 1})
    moved = await api.put(f"/v1/models/{name}/aliases/champion", json={"version": 2})
    assert moved.status_code == 200 and moved.json()["aliases"] == ["champion"]
    assert (await api.get(f"/v1/models/{name}/aliases/champion")).json()["version"] == 2
    assert (await api.get(f"/v1/models/{name}/versions/1")).json()["aliases"] == []
    assert (await api.get(f"/v1/models/{name}/aliases/latest")).json()["version"] == 2
    holders = (await api.get("/v1/versions", params={"alias": "champion", "model": name})).json()
    assert [v["version"] for v in holders["versions"]] == [2]
    assert (await api.delete(f"/v1/models/{name}/aliases/champion")).status_code == 200
    assert (await api.get(f"/v1/models/{name}/aliases/champion")).status_code == 404


async def test_tags_descriptions_and_metrics_change_and_show_in_searches(
    api: httpx.AsyncClient,
) -> None:
    name = await new_model(api, versions=1)
    assert (await api.put(f"/v1/models/{name}/tags/owner", json={"value": "ml"})).status_code == 200
    tagged = await api.put(f"/v1/models/{name}/versions/1/tags/validated", json={"value": "yes"})
    assert tagged.json()["tags"] == {"validated": "yes"}
    patched = await api.patch(
        f"/v1/models/{name}/versions/1", json={"description": "better", "metrics": {"f1": 0.8}}
    )
    assert patched.json()["description"] == "better" and patched.json()["metrics"] == {"f1": 0.8}
    model = await api.patch(f"/v1/models/{name}", json={"description": "about it"})
    assert model.json()["description"] == "about it"
    found = (await api.get("/v1/models", params={"name": name, "tag": "owner=ml"})).json()
    assert [m["name"] for m in found["models"]] == [name]
    versions = (
        await api.get("/v1/versions", params={"tag": "validated=yes", "model": name})
    ).json()
    assert [v["version"] for v in versions["versions"]] == [1]
    untagged = await api.delete(f"/v1/models/{name}/versions/1/tags/validated")
    assert untagged.json()["tags"] == {}
    gone = (await api.get("/v1/versions", params={"tag": "validated=yes", "model": name})).json()
    assert gone["versions"] == []


async def test_searches_read_their_own_writes_without_waiting(api: httpx.AsyncClient) -> None:
    for _ in range(20):
        name = await new_model(api)
        await api.post(f"/v1/models/{name}/versions", json={"source": "s3://x", "run_id": name})
        found = (await api.get("/v1/versions", params={"run_id": name})).json()
        assert [v["model"] for v in found["versions"]] == [name]


async def test_min_position_waits_for_that_event_and_unknown_positions_are_refused(
    api: httpx.AsyncClient,
) -> None:
    name = unique("pos")
    position = (await api.post("/v1/models", json={"name": name})).json()["position"]
    found = (await api.get("/v1/models", params={"name": name, "min_position": position})).json()
    assert [m["name"] for m in found["models"]] == [name]
    refused = await api.get("/v1/models", params={"min_position": 10**12})
    assert refused.status_code == 422 and "min_position" in refused.json()["error"]["message"]


async def test_pagination_walks_every_item_once_in_order(api: httpx.AsyncClient) -> None:
    prefix = unique("page")
    names = [f"{prefix}-{i:02d}" for i in range(7)]
    for name in reversed(names):
        assert (await api.post("/v1/models", json={"name": name})).status_code == 201
    seen, token = [], None
    pages = 0
    while True:
        params = {"name": f"{prefix}-*", "page_size": 3, **({"page_token": token} if token else {})}
        page = (await api.get("/v1/models", params=params)).json()
        seen += [m["name"] for m in page["models"]]
        pages += 1
        token = page["next_page_token"]
        if token is None:
            break
    assert seen == names and pages == 3

    model = await new_model(api, versions=5)
    first = (await api.get(f"/v1/models/{model}/versions", params={"page_size": 2})).json()
    rest = (
        await api.get(
            f"/v1/models/{model}/versions",
            params={"page_size": 10, "page_token": first["next_page_token"]},
        )
    ).json()
    assert [v["version"] for v in first["versions"] + rest["versions"]] == [1, 2, 3, 4, 5]
    assert rest["next_page_token"] is None


async def test_name_globs_treat_sql_wildcards_literally(api: httpx.AsyncClient) -> None:
    prefix = unique("glob")
    for name in (f"{prefix}_a", f"{prefix}xa"):
        await api.post("/v1/models", json={"name": name})
    found = (await api.get("/v1/models", params={"name": f"{prefix}_*"})).json()
    assert [m["name"] for m in found["models"]] == [f"{prefix}_a"]


async def test_renaming_keeps_versions_and_releases_the_old_name(
    api: httpx.AsyncClient,
) -> None:
    name = await new_model(api, versions=2)
    new_name = unique("renamed")
    renamed = await api.patch(f"/v1/models/{name}", json={"name": new_name})
    assert renamed.status_code == 200 and renamed.json()["name"] == new_name
    old = await api.get(f"/v1/models/{name}")
    assert old.status_code == 404 and new_name in old.json()["error"]["message"]
    listed = (await api.get(f"/v1/models/{new_name}/versions")).json()
    assert [(v["model"], v["version"]) for v in listed["versions"]] == [
        (new_name, 1),
        (new_name, 2),
    ]
    # The former name is free again (as in MLflow): a new, distinct model takes it.
    reuse = await api.post("/v1/models", json={"name": name})
    assert reuse.status_code == 201, reuse.text
    assert reuse.json()["id"] != renamed.json()["id"]
    now = (await api.get(f"/v1/models/{name}")).json()
    assert (now["id"], now["latest_version"]) == (reuse.json()["id"], 0)
    kept = (await api.get(f"/v1/models/{new_name}/versions")).json()["versions"]
    assert len(kept) == 2


async def test_a_deleted_models_name_can_be_taken_by_a_new_model_once(
    api: httpx.AsyncClient,
) -> None:
    name = await new_model(api, versions=2)
    first = (await api.get(f"/v1/models/{name}")).json()["id"]
    assert (await api.delete(f"/v1/models/{name}")).status_code == 200
    # Two clients take the released name at once: one model gets it, the other a 409.
    answers = await asyncio.gather(*(api.post("/v1/models", json={"name": name}) for _ in range(2)))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    second = next(a for a in answers if a.status_code == 201).json()["id"]
    assert second != first
    version = await api.post(f"/v1/models/{name}/versions", json={"source": "s3://again"})
    assert version.status_code == 201 and version.json()["version"] == 1  # its own numbering
    listed = await api.get("/v1/models", params={"name": name, "include_deleted": "true"})
    assert sorted((m["id"], m["deleted"]) for m in listed.json()["models"]) == sorted(
        [(first, True), (second, False)]
    )


async def test_renaming_onto_a_taken_name_is_a_conflict(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    first, second = await new_model(api), await new_model(api)
    before = await event_count(registry)
    response = await api.patch(f"/v1/models/{first}", json={"name": second})
    assert response.status_code == 409 and second in response.json()["error"]["message"]
    assert await event_count(registry) == before


async def test_deleting_a_version_keeps_its_number_and_releases_its_aliases(
    api: httpx.AsyncClient,
) -> None:
    name = await new_model(api, versions=2)
    await api.put(f"/v1/models/{name}/aliases/shadow", json={"version": 2})
    deleted = await api.delete(f"/v1/models/{name}/versions/2")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert (await api.get(f"/v1/models/{name}/versions/2")).status_code == 404
    assert (await api.get(f"/v1/models/{name}/aliases/shadow")).status_code == 404
    transition = await api.post(f"/v1/models/{name}/versions/2/stage", json={"stage": "Staging"})
    assert transition.status_code == 404 and "deleted" in transition.json()["error"]["message"]
    third = await api.post(f"/v1/models/{name}/versions", json={"source": "s3://again"})
    assert third.json()["version"] == 3
    live = (await api.get(f"/v1/models/{name}/versions")).json()
    assert [v["version"] for v in live["versions"]] == [1, 3]
    every = (await api.get(f"/v1/models/{name}/versions", params={"include_deleted": True})).json()
    assert [(v["version"], v["deleted"]) for v in every["versions"]] == [
        (1, False),
        (2, True),
        (3, False),
    ]


async def test_a_deleted_model_is_gone(api: httpx.AsyncClient) -> None:
    name = await new_model(api, versions=1)
    assert (await api.delete(f"/v1/models/{name}")).status_code == 200
    gone = await api.get(f"/v1/models/{name}")
    assert gone.status_code == 404 and "deleted" in gone.json()["error"]["message"]
    assert (await api.get("/v1/models", params={"name": name})).json()["models"] == []
    assert (await api.get("/v1/versions", params={"model": name})).json()["versions"] == []
    tagged = await api.put(f"/v1/models/{name}/tags/k", json={"value": "v"})
    assert tagged.status_code == 404 and "deleted" in tagged.json()["error"]["message"]


async def test_concurrent_registrations_on_one_model_are_gapless(api: httpx.AsyncClient) -> None:
    name = await new_model(api)
    responses = await asyncio.gather(
        *(api.post(f"/v1/models/{name}/versions", json={"source": f"s3://{i}"}) for i in range(25))
    )
    assert all(r.status_code == 201 for r in responses), [
        r.text for r in responses if r.status_code != 201
    ]
    assert sorted(r.json()["version"] for r in responses) == list(range(1, 26))
    assert (await api.get(f"/v1/models/{name}")).json()["latest_version"] == 25


async def test_an_idempotency_key_makes_a_retry_change_nothing(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    name = await new_model(api)
    headers = {"Idempotency-Key": str(uuid4()), "X-Registrar-Actor": "ci"}
    first = await api.post(
        f"/v1/models/{name}/versions", json={"source": "s3://a"}, headers=headers
    )
    before = await event_count(registry)
    retry = await api.post(
        f"/v1/models/{name}/versions", json={"source": "s3://a"}, headers=headers
    )
    assert retry.status_code == 201
    assert retry.json()["version"] == first.json()["version"] == 1
    assert retry.json()["position"] == first.json()["position"]
    assert await event_count(registry) == before


@pytest.mark.parametrize(
    "changed",
    ["body", "model", "route", "caller"],
)
async def test_an_idempotency_key_used_for_another_request_is_refused_naming_it(
    api: httpx.AsyncClient, registry: Registry, changed: str
) -> None:
    name, other = await new_model(api), await new_model(api)
    key = str(uuid4())
    headers = {"Idempotency-Key": key, "X-Registrar-Actor": "ci"}
    first = await api.post(
        f"/v1/models/{name}/versions", json={"source": "s3://a"}, headers=headers
    )
    assert first.status_code == 201
    before = await event_count(registry)
    method, path, body = "POST", f"/v1/models/{name}/versions", {"source": "s3://a"}
    if changed == "body":
        body = {"source": "s3://b"}
    elif changed == "model":
        path = f"/v1/models/{other}/versions"
    elif changed == "route":
        method, path, body = "PUT", f"/v1/models/{name}/tags/team", {"value": "x"}
    else:
        headers = {**headers, "X-Registrar-Actor": "someone-else"}

    reused = await api.request(method, path, json=body, headers=headers)

    assert reused.status_code == 422, reused.text
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert key in reused.json()["error"]["message"]
    assert await event_count(registry) == before


async def test_events_record_the_actor_and_correlation_id(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    name = unique("actor")
    correlation = str(uuid4())
    response = await api.post(
        "/v1/models",
        json={"name": name},
        headers={"X-Registrar-Actor": "alice", "X-Correlation-Id": correlation},
    )
    async with registry.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT actor, correlation_id::text AS c FROM events WHERE position = :p"),
                {"p": response.json()["position"]},
            )
        ).one()
    assert (row.actor, row.c) == ("alice", correlation)


BAD_REQUESTS = [
    ("post", "/v1/models", {"name": "a/b"}, 422, "name"),
    ("post", "/v1/models", {"name": "ok", "extra": 1}, 422, "extra"),
    ("post", "/v1/models", {"name": "ok", "tags": {"bad key!": "x"}}, 422, "tags"),
    ("post", "/v1/models", {"description": "no name"}, 422, "name"),
    ("post", "/v1/models/{m}/versions", {"source": "not a uri"}, 422, "source"),
    (
        "post",
        "/v1/models/{m}/versions",
        {"source": "mlflow-artifacts:/registry/01a2538b-291f-7d6c-9df5-896c7c88d270/1"},
        422,
        "only Registrar assigns",
    ),
    ("post", "/v1/models/{m}/versions", {"source": "s3://x", "digest": "md5:abc"}, 422, "sha256"),
    ("post", "/v1/models/{m}/versions", {"source": "s3://x", "digest": "sha256:zz"}, 422, "64"),
    (
        "post",
        "/v1/models/{m}/versions",
        {"source": "s3://x", "digest": "sha256:" + "A" * 64},
        422,
        "lowercase",
    ),
    ("post", "/v1/models/{m}/versions", {"digest": DIGEST}, 422, "sealing"),
    (
        "post",
        "/v1/models/{m}/versions",
        {"source": "s3://x", "datasets": [{"name": "d", "digest": "md5:1"}]},
        422,
        "sha256",
    ),
    (
        "post",
        "/v1/models/{m}/versions",
        {"source": "s3://x", "metrics": {"auc": "high"}},
        422,
        "metrics.auc",
    ),
    ("post", "/v1/models/{m}/versions", {"source": "s3://x", "size": -1}, 422, "size"),
    ("post", "/v1/models/{m}/versions/1/stage", {"stage": "Prod"}, 422, "stage"),
    (
        "post",
        "/v1/models/{m}/versions/1/stage",
        {"stage": "None", "archive_existing": True},
        422,
        "archive_existing",
    ),
    ("post", "/v1/models/{m}/versions/99/stage", {"stage": "Staging"}, 404, "version 99"),
    ("post", "/v1/models/nope-{m}/versions", {"source": "s3://x"}, 404, "no model"),
    ("put", "/v1/models/{m}/aliases/v1", {"version": 1}, 422, "reserved"),
    ("put", "/v1/models/{m}/aliases/ok", {"version": 0}, 422, "version"),
    ("put", "/v1/models/{m}/aliases/ok", {"version": 42}, 404, "version 42"),
    ("delete", "/v1/models/{m}/aliases/none", None, 404, "alias"),
    ("get", "/v1/models/{m}/versions/abc", None, 422, "version"),
    ("get", "/v1/models?page_token=not-a-token", None, 422, "page_token"),
    ("get", "/v1/models?tag=novalue", None, 422, "key=value"),
    ("get", "/v1/versions?stage=Nowhere", None, 422, "stage"),
    ("post", "/v1/models", "{not json", 422, "JSON"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "mentions"), BAD_REQUESTS)
async def test_bad_input_gets_a_4xx_naming_the_problem_and_changes_nothing(
    api: httpx.AsyncClient,
    registry: Registry,
    method: str,
    path: str,
    body: object,
    status: int,
    mentions: str,
) -> None:
    name = await new_model(api, versions=1)
    before = await event_count(registry)
    kwargs: dict[str, object] = {}
    if isinstance(body, str):
        kwargs = {"content": body, "headers": {"content-type": "application/json"}}
    elif body is not None:
        kwargs = {"json": body}
    response = await api.request(method.upper(), path.replace("{m}", name), **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert mentions.lower() in (error["message"] + str(error.get("fields", ""))).lower()
    assert await event_count(registry) == before


async def test_duplicate_names_are_a_409(api: httpx.AsyncClient, registry: Registry) -> None:
    name = await new_model(api)
    before = await event_count(registry)
    response = await api.post("/v1/models", json={"name": name})
    assert response.status_code == 409 and response.json()["error"]["code"] == "conflict"
    assert await event_count(registry) == before


async def test_openapi_and_health_are_published(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    for path in (
        "/v1/models",
        "/v1/models/{name}",
        "/v1/models/{name}/versions",
        "/v1/models/{name}/versions/{version}",
        "/v1/models/{name}/versions/{version}/tags/{key}",
        "/v1/models/{name}/versions/{version}/stage",
        "/v1/models/{name}/aliases/{alias}",
        "/v1/versions",
    ):
        assert path in spec["paths"], path
    health = await api.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"


async def test_the_projection_shows_what_the_streams_show(api: httpx.AsyncClient) -> None:
    name = await new_model(api, versions=3, tags={"k": "v"})
    await api.post(f"/v1/models/{name}/versions/2/stage", json={"stage": "Staging"})
    await api.put(f"/v1/models/{name}/aliases/best", json={"version": 3})
    listed = (await api.get("/v1/models", params={"name": name})).json()["models"]
    assert listed == [(await api.get(f"/v1/models/{name}")).json()]
    versions = (await api.get(f"/v1/models/{name}/versions")).json()["versions"]
    for listed_version in versions:
        one = (await api.get(f"/v1/models/{name}/versions/{listed_version['version']}")).json()
        assert listed_version == one


async def test_openapi_documents_the_request_headers_on_writes(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    post = spec["paths"]["/v1/models/{name}/versions"]["post"]
    headers = {p["name"] for p in post["parameters"] if p["in"] == "header"}
    assert headers == {"X-Registrar-Actor", "Idempotency-Key", "X-Correlation-Id"}


async def test_a_malformed_idempotency_key_is_refused(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    before = await event_count(registry)
    response = await api.post(
        "/v1/models", json={"name": unique("k")}, headers={"Idempotency-Key": "nope"}
    )
    assert (
        response.status_code == 422
        and "Idempotency-Key".lower() in response.json()["error"]["message"]
    )
    assert await event_count(registry) == before


async def stream_versions(registry: Registry, name: str) -> list[int]:
    async with registry.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT e.stream_version FROM events e JOIN model_names n USING (stream_id)"
                " WHERE n.name = :name ORDER BY e.stream_version"
            ),
            {"name": name},
        )
        return [row.stream_version for row in rows]


async def test_a_retry_that_would_decide_more_events_changes_nothing(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    name = await new_model(api, versions=2)
    key = {"Idempotency-Key": str(uuid4())}
    promote = {"stage": "Production", "archive_existing": True}
    first = await api.post(f"/v1/models/{name}/versions/1/stage", json=promote, headers=key)
    # Meanwhile the model changes so that the same command would now decide two events:
    # move version 1 back to Staging and version 2 into Production.
    await api.post(f"/v1/models/{name}/versions/1/stage", json={"stage": "Staging"})
    await api.post(f"/v1/models/{name}/versions/2/stage", json={"stage": "Production"})
    before = await event_count(registry)
    retry = await api.post(f"/v1/models/{name}/versions/1/stage", json=promote, headers=key)
    assert retry.status_code == 200
    assert retry.json()["position"] == first.json()["position"]
    assert await event_count(registry) == before
    versions = await stream_versions(registry, name)
    assert versions == list(range(1, len(versions) + 1)), "no gap in the stream"
    assert (await api.get(f"/v1/models/{name}/versions/2")).json()["stage"] == "Production"


async def test_retried_commands_answer_what_they_did_the_first_time(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    name = unique("retry")
    key = {"Idempotency-Key": str(uuid4())}
    created = await api.post("/v1/models", json={"name": name}, headers=key)
    again = await api.post("/v1/models", json={"name": name}, headers=key)
    assert (created.status_code, again.status_code) == (201, 201)
    assert again.json()["position"] == created.json()["position"]

    await api.post(f"/v1/models/{name}/versions", json={"source": "s3://1"})
    await api.post(f"/v1/models/{name}/versions", json={"source": "s3://2"})
    alias_key = {"Idempotency-Key": str(uuid4())}
    pointed = await api.put(
        f"/v1/models/{name}/aliases/best", json={"version": 1}, headers=alias_key
    )
    await api.put(f"/v1/models/{name}/aliases/best", json={"version": 2})
    before = await event_count(registry)
    replayed = await api.put(
        f"/v1/models/{name}/aliases/best", json={"version": 1}, headers=alias_key
    )
    assert replayed.status_code == 200
    assert replayed.json()["position"] == pointed.json()["position"]
    assert await event_count(registry) == before
    assert (await api.get(f"/v1/models/{name}/aliases/best")).json()["version"] == 2


async def test_projections_report_their_position_and_lag(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    name = await new_model(api, versions=1)
    written = (await api.post(f"/v1/models/{name}/versions", json={"source": "s3://x"})).json()
    await api.get("/v1/versions", params={"model": name})  # waits for the projection
    described = (await api.get("/v1/projections")).json()
    assert described["store_position"] >= written["position"]
    (current,) = [p for p in described["projections"] if p["name"] == "current_state"]
    assert current["position"] >= written["position"]
    assert current["lag"] == described["store_position"] - current["position"]
    # The in-process projector applies each event once (positions may have gaps: refused
    # appends use up identity values).
    if current["lag"] == 0:
        assert current["events_applied"] == await event_count(registry)


async def test_audit_verify_reports_every_chain_intact(api: httpx.AsyncClient) -> None:
    await new_model(api, versions=2)
    report = (await api.get("/v1/audit/verify")).json()
    assert report["intact"] is True and report["broken"] == []
    assert report["streams"] >= 1 and report["events"] >= 3
    assert len(report["heads_digest"]) == 64


async def test_a_parent_named_by_a_former_name_is_refused_with_the_current_name(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    old = await new_model(api, versions=1)
    current = unique("renamed-parent")
    await api.patch(f"/v1/models/{old}", json={"name": current})
    child = await new_model(api)
    before = await event_count(registry)
    response = await api.post(
        f"/v1/models/{child}/versions",
        json={"source": "s3://child", "parents": [{"model": old, "version": 1}]},
    )
    assert response.status_code == 422
    assert current in response.json()["error"]["message"]
    assert await event_count(registry) == before
    accepted = await api.post(
        f"/v1/models/{child}/versions",
        json={"source": "s3://child", "parents": [{"model": current, "version": 1}]},
    )
    assert accepted.status_code == 201
    assert accepted.json()["parents"][0]["model"] == current


@pytest.mark.parametrize(
    "path", ["/v1/models", "/v1/versions", "/v1/approvals", "/v1/audit", "/v1/models/{m}/stages"]
)
async def test_a_min_position_at_an_event_no_read_model_keeps_answers_at_once(
    api: httpx.AsyncClient, registry: Registry, path: str
) -> None:
    """A token's event, say: the read models keep no access stream, so waiting for them to
    apply it would never end; the read waits for the newest model event before it instead."""
    name = await new_model(api)
    issued = await api.post("/v1/admin/tokens", json={"user": unique("u"), "role": "viewer"})
    assert issued.status_code == 201, issued.text
    async with registry.engine.connect() as conn:
        position = (
            await conn.execute(text("SELECT max(position) FROM events WHERE type = 'TokenIssued'"))
        ).scalar_one()
    answer = await api.get(path.format(m=name), params={"min_position": position})
    assert answer.status_code == 200, answer.text
