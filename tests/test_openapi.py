"""/openapi.json tells the truth: each success answer's real schema, each refusal's real body, how
to authenticate. /docs and /redoc work without internet: everything they load comes from the API."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from registrar.api.app import create_app
from registrar.contracts.api import ErrorBody

WRITES = ("post", "put", "patch", "delete")
TEXT_STREAMS = {"application/x-ndjson", "text/csv"}
"""The media types the audit export answers with besides JSON."""
BINARY_STREAMS = {"application/octet-stream", "application/x-tar"}
"""Artifact files, one or a version's as an archive."""
RENDERED_DOCUMENTS = {"text/markdown", "text/html"}
"""A model card rendered for people (GET .../card?format=markdown|html): text made from the same
document its JSON answer holds, so the schema that tells its truth is the JSON one."""
NOTHING_TO_CONFLICT = {
    "/v1/artifacts/gc",
    "/v1/models/{name}/versions/{version}/compliance/validate",
}
"""POSTs that change no model: garbage collection (unreferenced blobs only), a dry run."""
HOUSE_ERROR = "#/components/schemas/ErrorBody"
MLFLOW_ERROR = "#/components/schemas/MlflowErrorBody"
OPEN = {"/healthz"}
"""The documented paths anyone may call (the docs pages themselves are not in the document)."""


@pytest.fixture
async def spec(api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.get("/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def is_mlflow(path: str) -> bool:
    return path.startswith(("/api/2.0/", "/ajax-api/2.0/"))


async def test_every_success_answer_has_its_real_schema(spec: dict[str, Any]) -> None:
    untyped = []
    for path, method, operation in operations(spec):
        successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        assert successes, f"{method} {path}"
        for status, response in successes.items():
            content = response.get("content")
            if status == "204":
                continue  # No Content: none, by definition
            if not content:
                untyped.append(f"{method.upper()} {path} {status}: no body documented")
                continue
            for media_type, described in content.items():
                schema = described.get("schema")
                if media_type == "application/json":
                    if not schema or schema == {"type": "string"}:
                        untyped.append(f"{method.upper()} {path} {status}: {schema}")
                elif media_type not in TEXT_STREAMS | BINARY_STREAMS | RENDERED_DOCUMENTS:
                    untyped.append(f"{method.upper()} {path} {status}: {media_type}")
    assert not untyped, "\n".join(untyped)


async def test_the_audit_export_declares_its_real_media_types(spec: dict[str, Any]) -> None:
    export = spec["paths"]["/v1/audit/export"]["get"]["responses"]["200"]["content"]
    assert set(export) == TEXT_STREAMS
    audit = spec["paths"]["/v1/audit"]["get"]["responses"]["200"]["content"]
    assert audit["application/json"]["schema"] == {"$ref": "#/components/schemas/AuditPage"}
    assert TEXT_STREAMS <= set(audit)


async def test_the_model_card_declares_its_json_document_and_its_renderings(
    spec: dict[str, Any],
) -> None:
    card = spec["paths"]["/v1/models/{name}/versions/{version}/card"]["get"]
    content = card["responses"]["200"]["content"]
    assert set(content) == {"application/json"} | RENDERED_DOCUMENTS
    assert content["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ModelCardDocument"
    }


def error_ref(response: dict[str, Any]) -> str | None:
    return response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")


async def test_every_v1_write_documents_the_house_422(spec: dict[str, Any]) -> None:
    for path, method, operation in operations(spec):
        if path.startswith("/v1/") and method in WRITES:
            invalid = operation["responses"].get("422")
            assert invalid is not None, f"{method} {path}"
            assert error_ref(invalid) == HOUSE_ERROR, f"{method} {path}"


async def test_fastapis_validation_error_is_nowhere(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    detail = schemas["ErrorDetail"]
    assert {"code", "message", "fields"} <= set(detail["properties"])
    assert set(detail["required"]) == {"code", "message"}
    assert set(schemas["FieldProblem"]["properties"]) == {"field", "problem"}
    assert schemas["ErrorBody"]["required"] == ["error"]


async def test_every_refusal_has_the_body_its_path_really_sends(spec: dict[str, Any]) -> None:
    wrong = []
    for path, method, operation in operations(spec):
        expected = MLFLOW_ERROR if is_mlflow(path) else HOUSE_ERROR
        for status, response in operation["responses"].items():
            if status[0] in "45" and error_ref(response) != expected:
                wrong.append(f"{method.upper()} {path} {status}: {error_ref(response)}")
            if status[0] in "45" and not response.get("description"):
                wrong.append(f"{method.upper()} {path} {status}: no description")
    assert not wrong, "\n".join(wrong)


async def test_routes_document_the_refusals_they_can_give(spec: dict[str, Any]) -> None:
    missing = []
    for path, method, operation in operations(spec):
        if not path.startswith("/v1/"):
            continue
        statuses = set(operation["responses"])
        query = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        wanted = set()
        if method in WRITES:
            wanted |= {"413"} if path in NOTHING_TO_CONFLICT else {"409", "413"}
        if "{name}" in path or "{request_id}" in path or "{run_id}" in path:
            wanted.add("404")  # a resource named in the path
        if "min_position" in query:
            wanted.add("503")  # a query that waits on a read model
        if query or "{" in path or "requestBody" in operation:
            wanted.add("422")
        if wanted - statuses:
            missing.append(f"{method.upper()} {path}: {sorted(wanted - statuses)}")
    assert not missing, "\n".join(missing)


async def test_bearer_and_basic_auth_are_documented(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["basicAuth"] == {**schemes["basicAuth"], "type": "http", "scheme": "basic"}
    assert {"bearerAuth": []} in spec["security"] and {"basicAuth": []} in spec["security"]
    assert "--auth" in spec["info"]["description"]
    for path, method, operation in operations(spec):
        if path in OPEN:
            assert operation["security"] == [], path
            assert not {"401", "403"} & set(operation["responses"]), path
        else:
            assert "security" not in operation, f"{method} {path}: the global one applies"
            assert {"401", "403"} <= set(operation["responses"]), f"{method} {path}"


async def test_the_documented_error_body_is_the_one_sent(api: httpx.AsyncClient) -> None:
    invalid = await api.post("/v1/models", json={"name": "", "surprise": 1})
    assert invalid.status_code == 422
    body = ErrorBody.model_validate(invalid.json())
    assert body.error.code == "invalid" and {f.field for f in body.error.fields} >= {
        "body.surprise"
    }
    missing = await api.get("/v1/models/no-such-model-anywhere")
    assert missing.status_code == 404
    assert ErrorBody.model_validate(missing.json()).error.code == "not_found"
    assert "fields" not in missing.json()["error"]  # absent, as documented, not null


async def test_the_document_is_valid_openapi(spec: dict[str, Any]) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    assert spec["openapi"].startswith("3.1")
    validator.validate(spec)


ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_load_nothing_from_the_internet(
    api: httpx.AsyncClient, page: str
) -> None:
    response = await api.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "http://" not in html and "https://" not in html, html
    assets = ASSET.findall(html)
    assert any(asset.endswith(".js") for asset in assets), html
    for asset in assets:
        fetched = await api.get(asset)
        assert fetched.status_code == 200 and fetched.content, asset
    assert "/openapi.json" in html


async def test_swagger_uis_oauth2_redirect_is_served(api: httpx.AsyncClient) -> None:
    response = await api.get("/docs/oauth2-redirect")
    assert response.status_code == 200 and "https://" not in response.text


@pytest.fixture(scope="module")
async def secured_api(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(database_url, auth_required=True)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registrar") as client:
            yield client


async def test_the_docs_need_no_token_when_everything_else_does(
    secured_api: httpx.AsyncClient,
) -> None:
    assert (await secured_api.get("/v1/models")).status_code == 401
    for page in ("/docs", "/redoc", "/openapi.json"):
        response = await secured_api.get(page)
        assert response.status_code == 200, page
        for asset in ASSET.findall(response.text) if page != "/openapi.json" else []:
            assert (await secured_api.get(asset)).status_code == 200, asset
