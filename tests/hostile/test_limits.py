"""What one request may hold is bounded, documented in the OpenAPI schema, and refused with a
clear 4xx that changes nothing: tag, metric, param and reference counts, text sizes, the whole
request's text, the body's bytes, and names no URL can address."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import text

from registrar.api.body_limit import MAX_BODY_BYTES
from registrar.contracts.values import (
    MAX_METRICS,
    MAX_PARAM_VALUE_LENGTH,
    MAX_PARAMS,
    MAX_REFERENCES,
    MAX_REQUEST_TEXT,
    MAX_TAG_VALUE_LENGTH,
    MAX_TAGS,
)
from registrar.registry import Registry


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid4().hex[:8]}"


async def event_count(registry: Registry) -> int:
    async with registry.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM events"))).scalar_one())


@pytest.fixture
async def model(api: httpx.AsyncClient) -> str:
    name = unique("limits")
    assert (await api.post("/v1/models", json={"name": name})).status_code == 201
    return name


TOO_MUCH: dict[str, tuple[dict[str, Any], str]] = {
    "tags": ({"tags": {f"k{i}": "v" for i in range(MAX_TAGS + 1)}}, "tags"),
    "metrics": ({"metrics": {f"m{i}": 1.0 for i in range(MAX_METRICS + 1)}}, "metrics"),
    "params": ({"params": {f"p{i}": "v" for i in range(MAX_PARAMS + 1)}}, "params"),
    "param value": ({"params": {"p": "v" * (MAX_PARAM_VALUE_LENGTH + 1)}}, "params"),
    "datasets": ({"datasets": [{"name": f"d{i}"} for i in range(MAX_REFERENCES + 1)]}, "datasets"),
    "request text": (
        {
            "tags": {
                f"k{i}": "v" * MAX_TAG_VALUE_LENGTH
                for i in range(MAX_REQUEST_TEXT // MAX_TAG_VALUE_LENGTH + 1)
            }
        },
        "characters of text",
    ),
}


@pytest.mark.parametrize("what", list(TOO_MUCH))
async def test_a_version_holding_too_much_is_refused_naming_the_limit(
    api: httpx.AsyncClient, registry: Registry, model: str, what: str
) -> None:
    extra, named = TOO_MUCH[what]
    before = await event_count(registry)
    answer = await api.post(f"/v1/models/{model}/versions", json={"source": "s3://m", **extra})
    assert answer.status_code == 422, answer.text[:500]
    assert named in answer.text
    assert await event_count(registry) == before


@pytest.mark.parametrize("name", [".", ".."])
async def test_names_no_url_can_address_are_refused(api: httpx.AsyncClient, name: str) -> None:
    native = await api.post("/v1/models", json={"name": name})
    assert native.status_code == 422, native.text
    assert "URLs cannot address it" in native.json()["error"]["message"]
    mlflow = await api.post("/api/2.0/mlflow/registered-models/create", json={"name": name})
    assert mlflow.status_code == 400 and mlflow.json()["error_code"] == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(
    ("path", "shape"),
    [("/v1/models", "house"), ("/api/2.0/mlflow/registered-models/create", "mlflow")],
)
async def test_a_body_larger_than_the_limit_is_refused_unread(
    api: httpx.AsyncClient, registry: Registry, path: str, shape: str
) -> None:
    before = await event_count(registry)
    body = b'{"name": "big", "description": "' + b"x" * MAX_BODY_BYTES + b'"}'
    answer = await api.post(path, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 413
    if shape == "mlflow":
        assert answer.json()["error_code"] == "RESOURCE_LIMIT_EXCEEDED"
    else:
        assert answer.json()["error"]["code"] == "too_large"
    assert await event_count(registry) == before


async def test_the_limits_are_in_the_openapi_schema(api: httpx.AsyncClient) -> None:
    schemas = (await api.get("/openapi.json")).json()["components"]["schemas"]
    version = schemas["CreateVersion"]["properties"]
    assert version["tags"]["maxProperties"] == MAX_TAGS
    assert version["metrics"]["maxProperties"] == MAX_METRICS
    assert version["params"]["maxProperties"] == MAX_PARAMS
    assert version["datasets"]["maxItems"] == MAX_REFERENCES
