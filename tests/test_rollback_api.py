"""Rollbacks over HTTP on a real PostgreSQL: `POST /v1/models/{name}/rollback` asks for a stage or
alias to go back to its previous holder as one governed transition, under the policy's rollback
rule; the audit trail says it was a rollback and why; the Python client asks the same."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import pytest

from registrar import AsyncClient

pytestmark = pytest.mark.asyncio(loop_scope="session")

ONCALL_POLICY = {
    "stages": {"Production": {"approvals": 2, "gates": ["metrics.auc >= 0.99"]}},
    "rollbacks": {"stages": {"Production": {"approvals": 1, "approver_role": "contributor"}}},
}


def as_(actor: str) -> dict[str, str]:
    return {"X-Registrar-Actor": actor}


async def apply_policy(api: httpx.AsyncClient, document: dict[str, Any]) -> int:
    applied = await api.put("/v1/policies", json=document, headers=as_("ada"))
    assert applied.status_code == 200, applied.text
    return int(applied.json()["version"])


async def model_with_versions(api: httpx.AsyncClient, count: int) -> str:
    name = f"ranker-{uuid4().hex[:8]}"
    assert (await api.post("/v1/models", json={"name": name})).status_code == 201
    for number in range(1, count + 1):
        body = {"source": f"s3://models/{name}/{number}", "metrics": {"auc": 0.9}}
        assert (await api.post(f"/v1/models/{name}/versions", json=body)).status_code == 201
    return name


async def promote_in_turn(api: httpx.AsyncClient, name: str, versions: range) -> None:
    for number in versions:
        moved = await api.post(
            f"/v1/models/{name}/versions/{number}/stage",
            json={"stage": "Production", "archive_existing": True},
        )
        assert moved.status_code == 200, moved.text


async def stage_of(api: httpx.AsyncClient, name: str, version: int) -> str:
    return str((await api.get(f"/v1/models/{name}/versions/{version}")).json()["stage"])


@pytest.fixture
async def client(api: httpx.AsyncClient) -> AsyncIterator[AsyncClient]:
    """The Python client, on the same in-process API (its ASGI transport)."""
    registrar = AsyncClient(base_url=str(api.base_url), transport=api._transport)
    yield registrar
    await registrar.aclose()


async def test_a_production_rollback_needs_one_oncall_approval_and_the_audit_says_why(
    api: httpx.AsyncClient,
) -> None:
    await apply_policy(api, {})
    name = await model_with_versions(api, 2)
    await promote_in_turn(api, name, range(1, 3))
    policy_version = await apply_policy(api, ONCALL_POLICY)

    asked = await api.post(
        f"/v1/models/{name}/rollback",
        json={"stage": "Production", "reason": "p99 latency tripled"},
        headers=as_("olga"),
    )

    assert asked.status_code == 201, asked.text
    request = asked.json()
    assert (request["state"], request["version"], request["stage"]) == ("pending", 1, "Production")
    assert request["rollback"] == {
        "reason": "p99 latency tripled",
        "from_version": 2,
        "to_version": 1,
    }
    assert request["missing"] == ["1 more approval from role contributor (0 of 1)"]
    assert await stage_of(api, name, 2) == "Production"

    approved = await api.post(
        f"/v1/transition-requests/{request['request_id']}/approve", json={}, headers=as_("omar")
    )

    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "applied"
    assert [await stage_of(api, name, n) for n in (1, 2)] == ["Production", "Archived"]
    read = await api.get(f"/v1/transition-requests/{request['request_id']}")
    assert read.json()["rollback"] == request["rollback"]
    audit = await api.get(
        "/v1/audit",
        params={
            "model": name,
            "action": "StageChanged",
            "min_position": approved.json()["position"],
        },
    )
    rows = [row for row in audit.json()["events"] if row["version"] == 1]
    assert [row["summary"] for row in rows][-1] == (
        "rolled back Production to version 1 (was 2): p99 latency tripled, under policy"
        f" v{policy_version} rollback rule (request {request['request_id']}), approved by omar,"
        " archived 2"
    )
    assert rows[-1]["reason"] == "p99 latency tripled"
    await apply_policy(api, {})


async def test_a_rollback_without_a_previous_holder_is_a_conflict(api: httpx.AsyncClient) -> None:
    await apply_policy(api, {})
    name = await model_with_versions(api, 1)
    await promote_in_turn(api, name, range(1, 2))

    refused = await api.post(
        f"/v1/models/{name}/rollback", json={"stage": "Production", "reason": "bad"}
    )

    assert refused.status_code == 409
    assert "no previous holder" in refused.json()["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"stage": "Production"},
        {"stage": "Production", "reason": "   "},
        {"reason": "bad"},
        {"stage": "Production", "alias": "champion", "reason": "bad"},
    ],
)
async def test_a_rollback_needs_a_reason_and_one_target(
    api: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    name = await model_with_versions(api, 1)
    assert (await api.post(f"/v1/models/{name}/rollback", json=body)).status_code == 422


async def test_the_client_rolls_an_alias_back_to_a_named_earlier_version(
    api: httpx.AsyncClient, client: AsyncClient
) -> None:
    await apply_policy(api, {})
    name = await model_with_versions(api, 3)
    for number in (1, 2, 3):
        await api.put(f"/v1/models/{name}/aliases/champion", json={"version": number})

    request = await client.rollback(
        name, "v2 and v3 share the bad feature", alias="champion", to_version=1
    )

    assert (request.state, request.version, request.alias) == ("applied", 1, "champion")
    assert request.rollback is not None and request.rollback.from_version == 3
    assert (await api.get(f"/v1/models/{name}")).json()["aliases"] == {"champion": 1}
