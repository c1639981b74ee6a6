"""The lineage graph over HTTP and from the CLI, on a real PostgreSQL: built from real commands and
training runs, walked up and down to a depth, and the impact of a dataset on what is deployed."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
from registrar_process import BIN, registrar_env
from sqlalchemy import text

from registrar.api.app import create_app
from registrar.store.database import create_engine

pytestmark = pytest.mark.asyncio(loop_scope="session")

DATASET_DIGEST = "sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"


@pytest.fixture(scope="module")
async def api(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(database_url, query_wait_seconds=10)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registrar") as client:
            yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid4().hex[:8]}"


class Writes:
    """Writes through the API, remembering the last position to read lineage as of it."""

    def __init__(self, api: httpx.AsyncClient) -> None:
        self.api = api
        self.position = 0

    async def send(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.api.request(method, path, json=body)
        assert response.status_code in (200, 201), response.text
        answer: dict[str, Any] = response.json()
        self.position = max(self.position, answer["position"])
        return answer

    async def model(self, name: str) -> str:
        await self.send("POST", "/v1/models", {"name": name})
        return name

    async def models(self, *prefixes: str) -> list[str]:
        return [await self.model(unique(prefix)) for prefix in prefixes]

    async def version(self, model: str, **body: Any) -> int:
        created = await self.send(
            "POST", f"/v1/models/{model}/versions", {"source": "s3://m", **body}
        )
        return int(created["version"])

    async def run(self, run_id: str, **body: Any) -> dict[str, Any]:
        message = {
            "message_id": str(uuid4()),
            "run_id": run_id,
            "artifact": {"uri": f"s3://models/{run_id}"},
            "finished_at": "2026-11-26T11:00:00Z",
            **body,
        }
        return await self.send("POST", "/v1/training-runs", message)

    async def lineage(self, node: str, **params: Any) -> dict[str, Any]:
        query = {"node": node, "min_position": self.position, **params}
        response = await self.api.get("/v1/lineage", params=query)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def impact(self, node: str) -> dict[str, Any]:
        query = {"node": node, "min_position": self.position}
        response = await self.api.get("/v1/lineage/impact", params=query)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


def ids(graph: dict[str, Any]) -> set[str]:
    return {node["id"] for node in graph["nodes"]}


def edges(graph: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(e["from"], e["to"], e.get("relation") or e["kind"]) for e in graph["edges"]}


async def test_a_training_run_links_its_version_run_datasets_and_commit(
    api: httpx.AsyncClient,
) -> None:
    w = Writes(api)
    model, run, data = unique("churn"), unique("run"), unique("customers")
    await w.run(
        run,
        model_name=model,
        experiment="churn",
        datasets=[
            {
                "name": data,
                "version": "v3",
                "uri": "s3://d/v3",
                "digest": DATASET_DIGEST,
            }
        ],
        code={"repository": "https://git.example.com/ml/churn", "commit": "4f2a9c1"},
    )
    graph = await w.lineage(f"version:{model}/1", direction="upstream", depth=2)
    version, dataset = f"version:{model}/1", f"dataset:{data}@v3"
    commit = "commit:https://git.example.com/ml/churn@4f2a9c1"
    assert graph["node"] == version
    assert ids(graph) == {version, f"run:{run}", dataset, commit}
    assert edges(graph) == {
        (version, f"run:{run}", "produced_by"),
        (version, dataset, "trained_on"),
        (f"run:{run}", dataset, "trained_on"),
        (f"run:{run}", commit, "built_from"),
    }
    nodes = {node["id"]: node for node in graph["nodes"]}
    assert nodes[dataset] == {
        "id": dataset,
        "kind": "dataset",
        "name": data,
        "version": "v3",
        "uri": "s3://d/v3",
        "digest": DATASET_DIGEST,
        "recorded": True,
    }
    assert nodes[f"run:{run}"]["experiment"] == "churn"
    assert nodes[f"run:{run}"]["model_name"] == model
    assert nodes[commit]["repository"] == "https://git.example.com/ml/churn"
    assert nodes[version]["stage"] == "None" and nodes[version]["run_id"] == run


async def test_a_run_id_no_run_event_named_is_a_node_not_yet_recorded(
    api: httpx.AsyncClient,
) -> None:
    w = Writes(api)
    model, run = await w.model(unique("m")), unique("mlflow-run")
    await w.version(model, run_id=run)
    graph = await w.lineage(f"run:{run}", direction="downstream", depth=1)
    assert {n["id"]: n["recorded"] for n in graph["nodes"]} == {
        f"run:{run}": False,
        f"version:{model}/1": True,
    }
    await w.run(run)  # recorded later: the same node, now with its facts
    graph = await w.lineage(f"run:{run}", direction="downstream", depth=1)
    node = next(n for n in graph["nodes"] if n["id"] == f"run:{run}")
    assert node["recorded"] is True and node["artifact_uri"] == f"s3://models/{run}"


async def test_derived_versions_carry_how_they_were_derived(api: httpx.AsyncClient) -> None:
    w = Writes(api)
    teacher, student, blend = await w.models("teacher", "student", "blend")
    await w.version(teacher)
    await w.version(teacher)
    parent = [{"model": teacher, "version": 1, "relation": "distilled"}]
    await w.version(student, parents=parent)
    await w.version(
        blend,
        parents=[
            {"model": teacher, "version": 2, "relation": "ensembled"},
            {"model": student, "version": 1, "relation": "ensembled"},
        ],
    )
    graph = await w.lineage(f"version:{blend}/1", direction="upstream", depth=5)
    assert edges(graph) == {
        (f"version:{blend}/1", f"version:{teacher}/2", "ensembled"),
        (f"version:{blend}/1", f"version:{student}/1", "ensembled"),
        (f"version:{student}/1", f"version:{teacher}/1", "distilled"),
    }
    assert all(e["kind"] == "derived_from" for e in graph["edges"])


async def test_depth_and_direction_bound_the_walk(api: httpx.AsyncClient) -> None:
    w = Writes(api)
    data = unique("events")
    chain = await w.model(unique("chain"))
    await w.version(chain, datasets=[{"name": data, "version": "v1"}])
    for number in range(2, 6):  # version N is fine-tuned from N-1
        await w.version(chain, parents=[{"model": chain, "version": number - 1}])
    v = [f"version:{chain}/{n}" for n in range(6)]  # v[1]..v[5]
    dataset = f"dataset:{data}@v1"

    async def walk(direction: str, depth: int) -> set[str]:
        return ids(await w.lineage(v[3], direction=direction, depth=depth))

    assert await walk("upstream", 1) == {v[3], v[2]}
    assert await walk("upstream", 2) == {v[3], v[2], v[1]}
    assert await walk("upstream", 3) == {v[3], v[2], v[1], dataset}
    assert await walk("downstream", 1) == {v[3], v[4]}
    assert await walk("downstream", 25) == {v[3], v[4], v[5]}
    assert await walk("both", 1) == {v[2], v[3], v[4]}
    both = await w.lineage(v[3], depth=2)
    assert edges(both) == {
        (v[3], v[2], "derived_from"),
        (v[2], v[1], "derived_from"),
        (v[4], v[3], "derived_from"),
        (v[5], v[4], "derived_from"),
    }


async def test_an_answer_holds_the_nearest_edges_up_to_its_cap_and_says_it_was_cut(
    api: httpx.AsyncClient,
) -> None:
    w = Writes(api)
    data = unique("wide")
    wide = await w.model(unique("wide"))
    for _ in range(6):
        await w.version(wide, datasets=[{"name": data, "version": "v1"}])
    dataset = f"dataset:{data}@v1"
    whole = await w.lineage(dataset, direction="downstream", depth=1)
    assert (whole["truncated"], len(whole["edges"])) == (False, 6)
    capped = await w.lineage(dataset, direction="downstream", depth=1, max_edges=4)
    assert (capped["truncated"], len(capped["edges"])) == (True, 4)
    assert edges(capped) < edges(whole)
    assert {e["from"] for e in capped["edges"]} | {dataset} == ids(capped)

    chain = await w.model(unique("chain"))
    await w.version(chain)
    for number in (2, 3):
        await w.version(chain, parents=[{"model": chain, "version": number - 1}])
    first = f"version:{chain}/1"
    nearest = await w.lineage(first, direction="downstream", depth=3, max_edges=1)
    assert nearest["truncated"]
    assert edges(nearest) == {(f"version:{chain}/2", first, "derived_from")}
    exact = await w.lineage(first, direction="downstream", depth=3, max_edges=2)
    assert not exact["truncated"] and len(exact["edges"]) == 2


async def test_impact_names_every_descendant_and_which_are_in_production_or_aliased(
    api: httpx.AsyncClient,
) -> None:
    w = Writes(api)
    data, run = unique("clicks"), unique("run")
    served, tuned, other = await w.models("served", "tuned", "other")
    await w.run(run, model_name=served, datasets=[{"name": data, "version": "v3"}])  # served/1
    await w.version(served, datasets=[{"name": data, "version": "v4"}])  # served/2: not from v3
    await w.version(tuned, parents=[{"model": served, "version": 1, "relation": "fine_tuned"}])
    await w.version(tuned, parents=[{"model": tuned, "version": 1}])  # tuned/2, two steps down
    await w.version(other, datasets=[{"name": data, "version": "v3"}])  # other/1, deleted below
    await w.version(other)
    await w.send("POST", f"/v1/models/{served}/versions/1/stage", {"stage": "Production"})
    await w.send("POST", f"/v1/models/{tuned}/versions/2/stage", {"stage": "Staging"})
    await w.send("PUT", f"/v1/models/{tuned}/aliases/champion", {"version": 2})
    await w.send("PUT", f"/v1/models/{other}/aliases/old", {"version": 1})
    await w.send("DELETE", f"/v1/models/{other}/versions/1", {})

    found = await w.impact(f"dataset:{data}@v3")
    assert found["node"] == f"dataset:{data}@v3"
    by_id = {v["id"]: v for v in found["versions"]}
    assert set(by_id) == {
        f"version:{served}/1",
        f"version:{tuned}/1",
        f"version:{tuned}/2",
        f"version:{other}/1",
    }
    assert by_id[f"version:{tuned}/2"]["aliases"] == ["champion"]
    assert by_id[f"version:{other}/1"]["deleted"] is True
    assert by_id[f"version:{other}/1"]["aliases"] == []  # deleting released it
    assert found["in_production"] == [f"version:{served}/1"]
    assert found["holding_aliases"] == [f"version:{tuned}/2"]
    assert found["deployments"] == []

    moved = await w.impact(f"version:{served}/1")  # a version's impact: what derives from it
    assert [v["id"] for v in moved["versions"]] == [f"version:{tuned}/1", f"version:{tuned}/2"]


async def test_a_renamed_model_shows_its_new_name_and_its_former_name_still_finds_it(
    api: httpx.AsyncClient,
) -> None:
    w = Writes(api)
    data = unique("d")
    old = await w.model(unique("old"))
    await w.version(old, datasets=[{"name": data}])
    new = unique("new")
    await w.send("PATCH", f"/v1/models/{old}", {"name": new})
    by_old = await w.lineage(f"version:{old}/1", direction="upstream", depth=1)
    by_new = await w.lineage(f"version:{new}/1", direction="upstream", depth=1)
    assert by_old == {**by_new, "node": f"version:{new}/1"}
    assert ids(by_new) == {f"version:{new}/1", f"dataset:{data}"}


async def test_a_name_taken_again_finds_the_new_model_and_the_old_one_stays_in_the_graph(
    api: httpx.AsyncClient,
) -> None:
    w = Writes(api)
    first_data, second_data = unique("first"), unique("second")
    name = await w.model(unique("reused"))
    await w.version(name, datasets=[{"name": first_data, "version": "v1"}])
    await w.send("DELETE", f"/v1/models/{name}", {})
    await w.model(name)  # the released name, taken by a new model
    await w.version(name, datasets=[{"name": second_data, "version": "v1"}])

    now = await w.lineage(f"version:{name}/1", direction="upstream", depth=1)
    assert ids(now) == {f"version:{name}/1", f"dataset:{second_data}@v1"}
    before = await w.impact(f"dataset:{first_data}@v1")
    [old] = before["versions"]
    [new] = [n for n in now["nodes"] if n["kind"] == "version"]
    assert (old["id"], old["deleted"], new["deleted"]) == (f"version:{name}/1", True, False)
    assert old["model_id"] != new["model_id"]


async def test_a_deleted_model_keeps_its_versions_in_the_graph_marked_deleted(
    api: httpx.AsyncClient,
) -> None:
    w = Writes(api)
    data = unique("d")
    model = await w.model(unique("gone"))
    await w.version(model, datasets=[{"name": data, "version": "1"}])
    await w.send("DELETE", f"/v1/models/{model}", {})
    graph = await w.lineage(f"dataset:{data}@1", direction="downstream")
    version = next(n for n in graph["nodes"] if n["kind"] == "version")
    assert version["id"] == f"version:{model}/1" and version["deleted"] is True


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"node": "dataset:never-seen@v1"}, 404, "no node 'dataset:never-seen@v1'"),
        ({"node": "version:never-seen/1"}, 404, "no model named 'never-seen'"),
        ({"node": "churn"}, 422, "not a lineage node id"),
        ({"node": "table:churn"}, 422, "not a lineage node id"),
        ({"node": "version:churn"}, 422, "version:MODEL/VERSION"),
        ({"node": "version:churn/x"}, 422, "version:MODEL/VERSION"),
        ({"node": "dataset:x", "direction": "sideways"}, 422, "'upstream', 'downstream'"),
        ({"node": "dataset:x", "depth": 0}, 422, "depth"),
        ({"node": "dataset:x", "depth": 26}, 422, "depth"),
        ({"node": "dataset:x", "depth": "deep"}, 422, "depth"),
        ({}, 422, "node"),
        ({"node": "dataset:x", "min_position": 10**12}, 422, "min_position"),
        ({"node": "dataset:x@v1", "max_edges": 0}, 422, "max_edges"),
        ({"node": "dataset:x@v1", "max_edges": 100_001}, 422, "max_edges"),
    ],
)
async def test_bad_lineage_queries_get_a_4xx_saying_what_is_wrong(
    api: httpx.AsyncClient, params: dict[str, Any], status: int, says: str
) -> None:
    for path in ("/v1/lineage", "/v1/lineage/impact"):
        if path.endswith("impact") and set(params) & {"direction", "depth", "max_edges"}:
            continue
        response = await api.get(path, params=params)
        assert response.status_code == status, (path, response.text)
        assert says in response.json()["error"]["message"], response.text


async def test_a_version_of_an_existing_model_that_does_not_exist_is_404(
    api: httpx.AsyncClient,
) -> None:
    w = Writes(api)
    model = await w.model(unique("m"))
    await w.version(model)
    response = await api.get(
        "/v1/lineage", params={"node": f"version:{model}/2", "min_position": w.position}
    )
    assert response.status_code == 404
    assert f"version:{model}/2" in response.json()["error"]["message"]


async def test_the_cli_draws_a_lineage_from_the_database(
    api: httpx.AsyncClient, database_url: str, tmp_path: Any
) -> None:
    w = Writes(api)
    data = unique("d")
    model = await w.model(unique("cli"))
    await w.version(model, datasets=[{"name": data, "version": "v1"}])
    await w.lineage(f"version:{model}/1")  # projected by now

    def registrar(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "registrar"), "lineage", *args],
            env=registrar_env(REGISTRAR_DATABASE_URL=database_url),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    node = f"version:{model}/1"
    mermaid = registrar(node, "--format", "mermaid", "--direction", "upstream")
    assert mermaid.returncode == 0, mermaid.stderr
    assert mermaid.stdout.splitlines() == [
        "flowchart LR",
        f'    n0[("dataset:{data}@v1")]',
        f'    n1["{node}"]',
        '    n0 -->|"trained_on"| n1',
    ]
    dot = registrar(node, "--format", "dot", "--depth", "1")
    assert dot.returncode == 0 and f'"dataset:{data}@v1" -> "{node}"' in dot.stdout
    as_json = registrar(node)
    assert as_json.returncode == 0 and f'"node":"{node}"' in as_json.stdout
    unknown = registrar("dataset:never-seen")
    assert unknown.returncode == 1 and "no node 'dataset:never-seen'" in unknown.stderr
    bad_depth = registrar(node, "--depth", "0")
    assert bad_depth.returncode == 2 and "--depth" in bad_depth.stderr


async def test_the_lineage_projection_reports_its_position(api: httpx.AsyncClient) -> None:
    w = Writes(api)
    model = await w.model(unique("m"))
    await w.version(model)
    await w.lineage(f"version:{model}/1", depth=1)
    status = (await api.get("/v1/projections")).json()
    lineage = next(p for p in status["projections"] if p["name"] == "lineage")
    assert lineage["position"] >= w.position


async def test_registrar_connections_run_without_jit_compilation(database_url: str) -> None:
    # The walk's row estimates (hundreds of millions) made PostgreSQL JIT-compile a 1 ms lineage
    # query for 170 ms before running it.
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SHOW jit"))).scalar() == "off"
    finally:
        await engine.dispose()


async def test_a_lineage_query_waits_past_an_event_of_a_stream_it_keeps_no_row_for(
    api: httpx.AsyncClient,
) -> None:
    """The policy stream (no colon in its id, like a model's) once made such a wait time out."""
    applied = await api.put("/v1/policies", json={"stages": {"Archived": {"approvals": 0}}})
    position = applied.json()["position"]
    await api.put("/v1/policies", json={})

    answer = await api.get(
        "/v1/lineage/impact", params={"node": "dataset:nothing", "min_position": position}
    )

    assert answer.status_code == 404, answer.text  # answered, not 503: the wait got past it
