"""Values in a query string or a path that PostgreSQL cannot take (a NUL, a number past 64 bits)
answer 4xx naming the problem, never 500: found by schemathesis over the OpenAPI document."""

from __future__ import annotations

import httpx
import pytest

NATIVE = [
    "/v1/audit?actor=a%00b",
    "/v1/approvals?model=a%00b",
    "/v1/admin/grants?user=a%00b",
    "/v1/models?name=a%00b",
    "/v1/versions?run_id=a%00b",
    "/v1/lineage?node=dataset:a%00b@1",
    "/v1/lineage?node=dataset:a@1&min_position=22363006031102697472",
    "/v1/models/m/versions/99999999999999999999",
]


@pytest.mark.parametrize("path", NATIVE)
async def test_the_native_api_answers_422(api: httpx.AsyncClient, path: str) -> None:
    answer = await api.get(path)
    assert answer.status_code in (404, 422), answer.text
    assert answer.json()["error"]["code"] in ("invalid", "not_found")


@pytest.mark.parametrize(
    "path",
    [
        "/api/2.0/mlflow/registered-models/search?filter=name%20%3D%20%27a%00b%27",
        "/api/2.0/mlflow/model-versions/search?filter=run_id%20%3D%20%27a%00b%27",
        "/api/2.0/mlflow/registered-models/get?name=a%00b",
    ],
)
async def test_the_mlflow_api_answers_4xx(api: httpx.AsyncClient, path: str) -> None:
    answer = await api.get(path)
    assert answer.status_code in (400, 404), answer.text
    assert answer.json()["error_code"] in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")
