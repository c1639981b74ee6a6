"""Text PostgreSQL cannot store (NUL) or that is not text at all (an unpaired surrogate) is refused
at every door with a clear 4xx, changes nothing, and leaves every read model answering. Before,
such text was accepted and then stalled the projections for good."""

from __future__ import annotations

import json
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import text

from registrar.contracts.commands import RegisterVersion, SetModelTag
from registrar.contracts.training import TrainingCompleted
from registrar.registry import Registry

NUL = "\u0000"
SURROGATE = "\ud800"
# As a client sends them: JSON escapes, since raw NUL bytes and lone surrogates are not UTF-8.
ESCAPED = {"nul": "\\u0000", "surrogate": "\\ud800"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid4().hex[:8]}"


def body_with(template: str, bad: str) -> bytes:
    """A JSON body whose `BAD` placeholder is the escaped character."""
    return template.replace("BAD", ESCAPED[bad]).encode()


@pytest.fixture
async def model(api: httpx.AsyncClient) -> str:
    name = unique("text")
    assert (await api.post("/v1/models", json={"name": name})).status_code == 201
    created = await api.post(f"/v1/models/{name}/versions", json={"source": "s3://m/1"})
    assert created.status_code == 201
    return name


async def event_count(registry: Registry) -> int:
    async with registry.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM events"))).scalar_one())


async def assert_nothing_changed(api: httpx.AsyncClient, registry: Registry, before: int) -> None:
    assert await event_count(registry) == before
    for path in ("/v1/models", "/v1/versions", "/v1/audit", "/v1/approvals"):
        answer = await api.get(path)
        assert answer.status_code == 200, (path, answer.text)


NATIVE_WRITES = [
    ("POST", "/v1/models/{m}/versions", '{"source": "s3://aBADb"}'),
    ("POST", "/v1/models/{m}/versions", '{"source": "s3://a", "metrics": {"aBAD": 1}}'),
    ("POST", "/v1/models/{m}/versions", '{"source": "s3://a", "params": {"p": "vBAD"}}'),
    ("POST", "/v1/models/{m}/versions", '{"source": "s3://a", "datasets": [{"name": "dBAD"}]}'),
    ("PUT", "/v1/models/{m}/tags/team", '{"value": "growthBAD"}'),
    ("PATCH", "/v1/models/{m}", '{"description": "aboutBAD"}'),
    ("PATCH", "/v1/models/{m}/versions/1", '{"description": "aboutBAD"}'),
    ("PUT", "/v1/models/{m}/versions/1/tags/k", '{"value": "BAD"}'),
    ("POST", "/v1/models", '{"name": "fresh", "description": "BAD"}'),
]


@pytest.mark.parametrize("bad", ["nul", "surrogate"])
@pytest.mark.parametrize(("method", "path", "template"), NATIVE_WRITES)
async def test_the_native_api_refuses_unstorable_text_and_changes_nothing(
    api: httpx.AsyncClient,
    registry: Registry,
    model: str,
    method: str,
    path: str,
    template: str,
    bad: str,
) -> None:
    before = await event_count(registry)
    answer = await api.request(
        method,
        path.format(m=model),
        content=body_with(template, bad),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code in (400, 422), answer.text
    assert answer.json()["error"]["code"] == "invalid"
    await assert_nothing_changed(api, registry, before)


MLFLOW_WRITES = [
    ("POST", "model-versions/create", '{"name": "{m}", "source": "s3://aBAD"}'),
    ("POST", "registered-models/set-tag", '{"name": "{m}", "key": "k", "value": "BAD"}'),
    ("PATCH", "registered-models/update", '{"name": "{m}", "description": "BAD"}'),
    ("POST", "model-versions/set-tag", '{"name": "{m}", "version": 1, "key": "k", "value": "BAD"}'),
]


@pytest.mark.parametrize("bad", ["nul", "surrogate"])
@pytest.mark.parametrize(("method", "endpoint", "template"), MLFLOW_WRITES)
async def test_the_mlflow_api_refuses_unstorable_text_and_changes_nothing(
    api: httpx.AsyncClient,
    registry: Registry,
    model: str,
    method: str,
    endpoint: str,
    template: str,
    bad: str,
) -> None:
    before = await event_count(registry)
    answer = await api.request(
        method,
        f"/api/2.0/mlflow/{endpoint}",
        content=body_with(template.replace("{m}", model), bad),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    await assert_nothing_changed(api, registry, before)


@pytest.mark.parametrize("bad", ["nul", "surrogate"])
async def test_a_training_run_with_unstorable_text_is_refused(
    api: httpx.AsyncClient, registry: Registry, bad: str
) -> None:
    before = await event_count(registry)
    message = {
        "message_id": str(uuid4()),
        "run_id": unique("run"),
        "model_name": unique("trained"),
        "artifact": {"uri": "s3://m"},
        "finished_at": "2026-12-01T00:00:00Z",
        "metrics": {"aucBAD": 0.9},
    }
    template = json.dumps(message)
    answer = await api.post(
        "/v1/training-runs",
        content=body_with(template, bad),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    await assert_nothing_changed(api, registry, before)


@pytest.mark.parametrize("value", [f"a{NUL}b", f"a{SURROGATE}b"], ids=["nul", "surrogate"])
def test_the_contracts_refuse_it_wherever_it_is_nested(value: str) -> None:
    """Kafka messages and in-process callers build the same contracts the doors do."""
    with pytest.raises(ValueError):
        RegisterVersion(name="m", source="s3://m", tags={"k": value})
    with pytest.raises(ValueError):
        SetModelTag(name="m", key="k", value=value)
    with pytest.raises(ValueError):
        TrainingCompleted.model_validate(
            {
                "message_id": str(uuid4()),
                "run_id": "r",
                "artifact": {"uri": "s3://m"},
                "finished_at": "2026-12-01T00:00:00Z",
                "datasets": [{"name": value}],
            }
        )
