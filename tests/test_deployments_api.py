"""Deployment reports over HTTP on a real PostgreSQL: a deployer reports, the deployments read model
answers what runs where (now and as of any instant), drift after a promotion, a rollback and a
demotion, lineage reaches the environments serving a version, reports are idempotent by
report_id, bad reports are refused with the reason and change nothing, and only deployers and
admins may report when authentication is on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import pytest

from registrar.access.administration import AccessAdministration
from registrar.api.app import create_app
from registrar.commands.command_handler import CommandMeta
from registrar.contracts.values import Role

pytestmark = pytest.mark.asyncio(loop_scope="session")

ENVIRONMENTS = {
    "environments": {
        "prod": {"follows": {"stage": "Production"}},
        "canary": {"follows": {"alias": "champion"}},
        "lab": {},
    }
}


@pytest.fixture(autouse=True)
async def environments(api: httpx.AsyncClient) -> None:
    applied = await api.put("/v1/policies", json=ENVIRONMENTS)
    assert applied.status_code == 200, applied.text


async def new_model(api: httpx.AsyncClient, versions: int = 2, **version: Any) -> str:
    name = f"churn-{uuid4().hex[:8]}"
    assert (await api.post("/v1/models", json={"name": name})).status_code == 201
    for n in range(1, versions + 1):
        body = {"source": f"s3://models/{name}/{n}", **version}
        assert (await api.post(f"/v1/models/{name}/versions", json=body)).status_code == 201
    return name


def report(model: str, version: int, status: str = "serving", **more: Any) -> dict[str, Any]:
    return {
        "report_id": str(uuid4()),
        "model": model,
        "version": version,
        "environment": "prod",
        "status": status,
        "deployer": "argo-cd",
        **more,
    }


async def reported(api: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = await api.post("/v1/deployments", json=body, headers={"X-Registrar-Actor": "ci"})
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def promote(api: httpx.AsyncClient, model: str, version: int, **more: Any) -> int:
    body = {"stage": "Production", "archive_existing": True, **more}
    moved = await api.post(f"/v1/models/{model}/versions/{version}/stage", json=body)
    assert moved.status_code == 200, moved.text
    return int(moved.json()["position"])


async def drift_of(api: httpx.AsyncClient, model: str, position: int, **params: Any) -> list[Any]:
    found = await api.get(
        "/v1/deployments/drift", params={"model": model, "min_position": position, **params}
    )
    assert found.status_code == 200, found.text
    return found.json()["drift"]  # type: ignore[no-any-return]


# --- reporting and reading ------------------------------------------------------------------------


async def test_a_deployer_reports_a_version_serving_and_it_shows_where_it_runs(
    api: httpx.AsyncClient,
) -> None:
    model = await new_model(api)
    body = report(model, 1, endpoint="https://churn.prod", message="rolled out by pipeline 7")

    answer = await reported(api, body)

    assert answer["recorded"] and answer["status"] == "serving"
    assert answer["deployer"] == "argo-cd" and answer["replaced_version"] is None
    at = {"min_position": answer["position"]}
    listed = (await api.get("/v1/deployments", params={"model": model, **at})).json()
    (row,) = listed["deployments"]
    assert row["environment"] == "prod" and row["model"] == model and row["version"] == 1
    assert (row["status"], row["deployer"], row["actor"]) == ("serving", "argo-cd", "ci")
    assert row["since"] == row["reported_at"] == answer["reported_at"]
    assert row["endpoint"] == "https://churn.prod" and row["report_id"] == body["report_id"]
    by_model = (await api.get(f"/v1/models/{model}/deployments", params=at)).json()
    assert by_model["deployments"] == listed["deployments"]
    own = (await api.get(f"/v1/models/{model}/versions/1/deployments", params=at)).json()
    assert [(d["environment"], d["status"]) for d in own["deployments"]] == [("prod", "serving")]
    prod = (await api.get("/v1/deployments", params={"environment": "prod", **at})).json()
    assert row in prod["deployments"]


async def test_a_version_reported_serving_retires_the_one_before_it(
    api: httpx.AsyncClient,
) -> None:
    model = await new_model(api)
    await reported(api, report(model, 1, endpoint="https://v1"))
    await reported(api, report(model, 2, "deploying"))

    answer = await reported(api, report(model, 2))

    assert answer["replaced_version"] == 1
    at = {"min_position": answer["position"]}
    now = (await api.get(f"/v1/models/{model}/deployments", params=at)).json()["deployments"]
    assert [(d["version"], d["status"]) for d in now] == [(2, "serving")]
    everything = await api.get(
        f"/v1/models/{model}/deployments", params={**at, "include_retired": True}
    )
    retired = everything.json()["deployments"][0]
    assert (retired["version"], retired["status"], retired["replaced_by"]) == (1, "retired", 2)
    assert retired["endpoint"] == "https://v1"
    trail = await api.get(
        "/v1/audit", params={"model": model, "action": "DeploymentReported", **at}
    )
    assert trail.json()["events"][-1]["summary"].startswith(
        "argo-cd reported 2 serving in prod, replacing 1"
    )


# --- idempotency --------------------------------------------------------------------------------


async def test_a_report_sent_again_with_its_report_id_is_recorded_once(
    api: httpx.AsyncClient,
) -> None:
    model = await new_model(api)
    body = report(model, 1)

    first = await reported(api, body)
    again = await reported(api, body)

    assert again == first
    trail = await api.get(
        "/v1/audit",
        params={"model": model, "action": "DeploymentReported", "min_position": first["position"]},
    )
    assert len(trail.json()["events"]) == 1


async def test_a_report_id_used_again_for_another_report_is_refused(api: httpx.AsyncClient) -> None:
    model = await new_model(api)
    body = report(model, 1)
    await reported(api, body)

    reused = await api.post("/v1/deployments", json={**body, "status": "failed"})

    assert reused.status_code == 422
    assert f"report_id {body['report_id']!r} was used before" in reused.json()["error"]["message"]


async def test_repeating_the_known_status_with_a_new_report_id_records_nothing(
    api: httpx.AsyncClient,
) -> None:
    model = await new_model(api)
    first = await reported(api, report(model, 1))

    repeated = await api.post("/v1/deployments", json=report(model, 1))

    assert repeated.status_code == 200, repeated.text
    assert repeated.json()["recorded"] is False
    assert repeated.json()["position"] == first["position"]


# --- drift ----------------------------------------------------------------------------------------


async def test_a_promotion_not_yet_deployed_is_drift_until_it_is(api: httpx.AsyncClient) -> None:
    model = await new_model(api)
    await promote(api, model, 1)
    deployed = await reported(api, report(model, 1))
    assert await drift_of(api, model, deployed["position"]) == []

    position = await promote(api, model, 2)

    (drift,) = await drift_of(api, model, position)
    assert drift["environment"] == "prod" and drift["follows"] == {"stage": "Production"}
    assert (drift["expected_version"], drift["serving_version"]) == (2, 1)
    assert drift["reason"] == "promoted" and drift["lag_seconds"] >= 0
    audit = await api.get(
        "/v1/audit", params={"model": model, "action": "StageChanged", "min_position": position}
    )
    assert drift["since"] == audit.json()["events"][-2]["recorded_at"]  # version 2's promotion
    caught_up = await reported(api, report(model, 2))
    assert await drift_of(api, model, caught_up["position"]) == []


async def test_a_rollback_leaves_the_environment_serving_a_demoted_version(
    api: httpx.AsyncClient,
) -> None:
    model = await new_model(api)
    await promote(api, model, 1)
    await promote(api, model, 2)
    deployed = await reported(api, report(model, 2))
    assert await drift_of(api, model, deployed["position"]) == []

    rolled = await api.post(
        f"/v1/models/{model}/rollback",
        json={"stage": "Production", "reason": "version 2 mislabels churners"},
    )
    assert rolled.status_code == 201, rolled.text

    (drift,) = await drift_of(api, model, rolled.json()["position"])
    assert (drift["expected_version"], drift["serving_version"]) == (1, 2)
    assert drift["reason"] == "demoted"


async def test_a_serving_version_moved_out_of_its_stage_is_demoted_drift(
    api: httpx.AsyncClient,
) -> None:
    model = await new_model(api, versions=1)
    await promote(api, model, 1)
    await reported(api, report(model, 1))

    archived = await api.post(f"/v1/models/{model}/versions/1/stage", json={"stage": "Archived"})
    assert archived.status_code == 200

    (drift,) = await drift_of(api, model, archived.json()["position"])
    assert (drift["expected_version"], drift["serving_version"]) == (None, 1)
    assert drift["reason"] == "demoted"


async def test_an_environment_following_an_alias_drifts_when_the_alias_moves(
    api: httpx.AsyncClient,
) -> None:
    model = await new_model(api)
    assert (await api.put(f"/v1/models/{model}/aliases/champion", json={"version": 1})).is_success
    await reported(api, report(model, 1, environment="canary"))

    moved = await api.put(f"/v1/models/{model}/aliases/champion", json={"version": 2})

    found = await drift_of(api, model, moved.json()["position"], environment="canary")
    assert [(d["environment"], d["expected_version"], d["serving_version"]) for d in found] == [
        ("canary", 2, 1)
    ]
    assert found[0]["follows"] == {"alias": "champion"}


async def test_drift_of_an_undeclared_environment_is_a_404(api: httpx.AsyncClient) -> None:
    missing = await api.get("/v1/deployments/drift", params={"environment": "mars"})

    assert missing.status_code == 404
    assert "declared: canary, lab, prod" in missing.json()["error"]["message"]


# --- as of --------------------------------------------------------------------------------------


async def test_deployments_and_drift_read_as_of_any_instant(api: httpx.AsyncClient) -> None:
    model = await new_model(api)
    await promote(api, model, 1)
    first = await reported(api, report(model, 1))
    position = await promote(api, model, 2)
    second = await reported(api, report(model, 2))
    before = {"model": model, "min_position": second["position"], "as_of": first["reported_at"]}

    then = (await api.get("/v1/deployments", params=before)).json()["deployments"]
    latest = {k: v for k, v in before.items() if k != "as_of"}
    now = (await api.get("/v1/deployments", params=latest)).json()

    assert [(d["version"], d["status"]) for d in then] == [(1, "serving")]
    assert [(d["version"], d["status"]) for d in now["deployments"]] == [(2, "serving")]
    audit = await api.get(
        "/v1/audit", params={"model": model, "action": "StageChanged", "min_position": position}
    )
    promoted_at = audit.json()["events"][-2]["recorded_at"]
    lagging = await drift_of(api, model, second["position"], as_of=promoted_at)
    assert [(d["expected_version"], d["serving_version"]) for d in lagging] == [(2, 1)]
    assert lagging[0]["lag_seconds"] == 0
    assert await drift_of(api, model, second["position"]) == []
    version_then = await api.get(
        f"/v1/models/{model}/versions/1/deployments", params={"as_of": second["reported_at"]}
    )
    assert version_then.json()["deployments"][0]["status"] == "retired"
    bad = await api.get("/v1/deployments", params={"as_of": "yesterday"})
    assert bad.status_code == 422 and "RFC 3339" in bad.json()["error"]["message"]


# --- lineage ------------------------------------------------------------------------------------


async def test_impact_from_a_dataset_reaches_the_environments_serving_it(
    api: httpx.AsyncClient,
) -> None:
    dataset = {"name": f"clicks-{uuid4().hex[:6]}", "version": "v3"}
    model = await new_model(api, versions=1, datasets=[dataset])
    assert (await api.post(f"/v1/models/{model}/versions", json={"source": "s3://x/2"})).is_success
    served = await reported(api, report(model, 1))
    node = f"dataset:{dataset['name']}@v3"

    impact = await api.get(
        "/v1/lineage/impact", params={"node": node, "min_position": served["position"]}
    )

    (deployment,) = impact.json()["deployments"]
    assert deployment["id"] == f"deployment:prod/{model}"
    assert deployment["serving_version"] == 1 and deployment["environment"] == "prod"
    graph = await api.get(
        "/v1/lineage", params={"node": f"deployment:prod/{model}", "direction": "upstream"}
    )
    assert {
        "from": f"deployment:prod/{model}",
        "to": f"version:{model}/1",
        "kind": "deployed_as",
    } in (graph.json()["edges"])
    replaced = await reported(api, report(model, 2))
    after = await api.get(
        "/v1/lineage/impact", params={"node": node, "min_position": replaced["position"]}
    )
    assert after.json()["deployments"] == []


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "status", "says"),
    [
        ({"environment": "prdo"}, 422, "environment 'prdo' is not declared"),
        ({"version": 9}, 404, "has no version 9"),
        ({"model": "no-such-model-anywhere"}, 404, "no model named 'no-such-model-anywhere'"),
        ({"status": "running"}, 422, "body.status"),
        ({"report_id": ""}, 422, "body.report_id"),
        ({"environment": "a/b"}, 422, "body.environment"),
        ({"surprise": 1}, 422, "body.surprise"),
    ],
)
async def test_a_bad_report_is_refused_with_the_reason_and_changes_nothing(
    api: httpx.AsyncClient, change: dict[str, Any], status: int, says: str
) -> None:
    model = await new_model(api)
    before = await reported(api, report(model, 1))

    refused = await api.post("/v1/deployments", json={**report(model, 1, "failed"), **change})

    assert refused.status_code == status, refused.text
    assert says in refused.text
    now = await api.get(
        f"/v1/models/{model}/deployments", params={"min_position": before["position"]}
    )
    assert [(d["version"], d["status"]) for d in now.json()["deployments"]] == [(1, "serving")]


async def test_a_deleted_version_cannot_be_reported_serving(api: httpx.AsyncClient) -> None:
    model = await new_model(api)
    assert (await api.delete(f"/v1/models/{model}/versions/2")).is_success

    refused = await api.post("/v1/deployments", json=report(model, 2))

    assert refused.status_code == 409
    assert "can only be reported retired" in refused.json()["error"]["message"]


# --- who may report -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def secured(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, dict[Role, str]]]:
    """The API with authentication on, and a token of every role (users named after it)."""
    app = create_app(database_url, auth_required=True)
    async with app.router.lifespan_context(app):
        administration = AccessAdministration(app.state.registry.store)
        admin = await administration.issue_token("admin", Role.ADMIN, CommandMeta("cli:test"))
        await app.state.access_guard.cache.reload()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registrar") as client:
            tokens = {Role.ADMIN: admin.token}
            for role in (Role.VIEWER, Role.CONTRIBUTOR, Role.APPROVER, Role.DEPLOYER):
                made = await client.post(
                    "/v1/admin/tokens",
                    json={"user": f"{role.value}-{uuid4().hex[:6]}", "role": role.value},
                    headers={"Authorization": f"Bearer {admin.token}"},
                )
                assert made.status_code == 201, made.text
                tokens[role] = made.json()["token"]
            yield client, tokens


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.VIEWER, False),
        (Role.CONTRIBUTOR, False),
        (Role.APPROVER, False),
        (Role.DEPLOYER, True),
        (Role.ADMIN, True),
    ],
)
async def test_only_deployers_and_admins_may_report_when_authentication_is_on(
    api: httpx.AsyncClient,
    secured: tuple[httpx.AsyncClient, dict[Role, str]],
    role: Role,
    allowed: bool,
) -> None:
    client, tokens = secured
    model = await new_model(api)
    as_role = {"Authorization": f"Bearer {tokens[role]}"}

    answer = await client.post("/v1/deployments", json=report(model, 1), headers=as_role)

    if allowed:
        assert answer.status_code == 201, answer.text
        assert answer.json()["deployer"] == "argo-cd"
    else:
        assert answer.status_code == 403, answer.text
        assert "deploy needs the deployer role" in answer.json()["error"]["message"]
    read = await client.get("/v1/deployments/drift", headers=as_role)
    assert read.status_code == 200, read.text


async def test_a_deployer_may_neither_register_nor_promote(
    api: httpx.AsyncClient, secured: tuple[httpx.AsyncClient, dict[Role, str]]
) -> None:
    client, tokens = secured
    model = await new_model(api)
    as_deployer = {"Authorization": f"Bearer {tokens[Role.DEPLOYER]}"}

    registered = await client.post("/v1/models", json={"name": "nope"}, headers=as_deployer)
    promoted = await client.post(
        f"/v1/models/{model}/versions/1/stage", json={"stage": "Production"}, headers=as_deployer
    )

    assert registered.status_code == promoted.status_code == 403
