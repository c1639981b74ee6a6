"""Access control over HTTP (in-process ASGI) on a real PostgreSQL, authentication required:
401 without a valid token and 403 without the right on every route group, owners, revocation in
this process and from another, and every refusal recorded as an event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import text

from registrar.access.administration import AccessAdministration
from registrar.access.guard import AccessGuard
from registrar.access.refusals import RefusalRecorder
from registrar.api.app import create_app
from registrar.commands.command_handler import CommandMeta
from registrar.contracts.values import Role
from registrar.registry import Registry

pytestmark = pytest.mark.asyncio(loop_scope="session")

MLFLOW_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")


@dataclass
class Secured:
    registry: Registry
    guard: AccessGuard
    client: httpx.AsyncClient
    tokens: dict[Role, str]
    """A token of each role, users named after the role (viewer, contributor, ...)."""

    def as_(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture(scope="module")
async def secured(database_url: str) -> AsyncIterator[Secured]:
    app = create_app(database_url, auth_required=True)
    guard: AccessGuard = app.state.access_guard
    # Only a notification can then refresh the token cache of this app within a test.
    guard.refresh_seconds = 3600
    async with app.router.lifespan_context(app):
        registry: Registry = app.state.registry
        # The first admin token, as `registrar token create` makes it: straight in the store.
        first = await AccessAdministration(registry.store).issue_token(
            "admin", Role.ADMIN, CommandMeta("cli:test")
        )
        await guard.cache.reload()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registrar") as client:
            tokens = {Role.ADMIN: first.token}
            for role in (Role.VIEWER, Role.CONTRIBUTOR, Role.APPROVER):
                made = await client.post(
                    "/v1/admin/tokens",
                    json={"user": role.value, "role": role.value},
                    headers={"Authorization": f"Bearer {first.token}"},
                )
                assert made.status_code == 201, made.text
                tokens[role] = made.json()["token"]
            yield Secured(registry, guard, client, tokens)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid4().hex[:8]}"


async def new_model(secured: Secured, role: Role = Role.ADMIN) -> str:
    name = unique("model")
    created = await secured.client.post(
        "/v1/models", json={"name": name}, headers=secured.as_(role)
    )
    assert created.status_code == 201, created.text
    return name


async def refusals(secured: Secured) -> list[dict[str, object]]:
    await secured.guard.refusals.flush()
    async with secured.registry.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT stream_id, actor, payload::jsonb AS p FROM events"
                " WHERE type = 'AccessRefused' ORDER BY position"
            )
        )
        return [{"stream_id": r.stream_id, "envelope_actor": r.actor, **r.p} for r in rows]


# Every route group: a read and a write, the write refused to a role below the one it needs.
ROUTE_GROUPS = [
    ("models", ("GET", "/v1/models", None), ("POST", "/v1/models", {"name": "x"}), Role.VIEWER),
    (
        "versions",
        ("GET", "/v1/versions", None),
        ("POST", "/v1/models/{m}/versions", {"source": "s3://b/m"}),
        Role.VIEWER,
    ),
    (
        "stages",
        ("GET", "/v1/models/{m}/versions/1", None),
        ("POST", "/v1/models/{m}/versions/1/stage", {"stage": "Production"}),
        Role.CONTRIBUTOR,
    ),
    (
        "aliases",
        ("GET", "/v1/models/{m}/aliases/champion", None),
        ("PUT", "/v1/models/{m}/aliases/champion", {"version": 1}),
        Role.CONTRIBUTOR,
    ),
    ("runs", ("GET", "/v1/runs/r-1", None), ("POST", "/v1/training-runs", {}), Role.VIEWER),
    (
        "model management",
        ("GET", "/v1/models/{m}", None),
        ("DELETE", "/v1/models/{m}", None),
        Role.APPROVER,
    ),
    ("admin", ("GET", "/v1/admin/tokens", None), ("POST", "/v1/admin/tokens", {}), Role.APPROVER),
]


@pytest.mark.parametrize(
    ("group", "read", "write", "too_low"), ROUTE_GROUPS, ids=[g[0] for g in ROUTE_GROUPS]
)
async def test_every_route_group_answers_401_without_a_token_and_403_without_the_right(
    secured: Secured,
    group: str,
    read: tuple[str, str, object],
    write: tuple[str, str, object],
    too_low: Role,
) -> None:
    name = await new_model(secured)
    for method, path, body in (read, write):
        anonymous = await secured.client.request(method, path.format(m=name), json=body)
        assert anonymous.status_code == 401, (group, method, path)
        assert anonymous.json()["error"]["code"] == "unauthenticated"
        assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    method, path, body = write
    refused = await secured.client.request(
        method, path.format(m=name), json=body, headers=secured.as_(too_low)
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "permission_denied"
    assert f"{too_low.value} has {too_low.value}" in refused.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/v1/projections", "/v1/audit/verify", "/v1/lineage"])
async def test_read_only_groups_need_a_token_and_any_role_reads_them(
    secured: Secured, path: str
) -> None:
    assert (await secured.client.get(path)).status_code == 401
    assert (await secured.client.get(path, headers=secured.as_(Role.VIEWER))).status_code not in (
        401,
        403,
    )


@pytest.mark.parametrize("prefix", MLFLOW_PREFIXES)
async def test_mlflow_paths_refuse_with_mlflow_error_codes(secured: Secured, prefix: str) -> None:
    name = await new_model(secured)
    read = await secured.client.get(f"{prefix}/registered-models/get", params={"name": name})
    assert read.status_code == 401
    assert read.json()["error_code"] == "UNAUTHENTICATED"
    write = await secured.client.post(
        f"{prefix}/registered-models/create",
        json={"name": unique("m")},
        headers=secured.as_(Role.VIEWER),
    )
    assert write.status_code == 403
    assert write.json()["error_code"] == "PERMISSION_DENIED"
    assert "contribute needs the contributor role" in write.json()["message"]
    allowed = await secured.client.get(
        f"{prefix}/registered-models/get", params={"name": name}, headers=secured.as_(Role.VIEWER)
    )
    assert allowed.status_code == 200, allowed.text


async def test_health_needs_no_token(secured: Secured) -> None:
    assert (await secured.client.get("/healthz")).status_code == 200


async def test_an_unknown_token_and_a_malformed_header_are_401(secured: Secured) -> None:
    for header in ("Bearer rgt_not-a-token", "Token abc", "Basic !!"):
        answer = await secured.client.get("/v1/models", headers={"Authorization": header})
        assert answer.status_code == 401, header
        assert answer.json()["error"]["message"]


async def test_the_caller_is_the_tokens_user_whatever_the_actor_header_says(
    secured: Secured,
) -> None:
    created = await secured.client.post(
        "/v1/models",
        json={"name": unique("who")},
        headers={**secured.as_(Role.CONTRIBUTOR), "X-Registrar-Actor": "someone-else"},
    )
    assert created.status_code == 201
    async with secured.registry.engine.connect() as conn:
        actor = await conn.scalar(
            text("SELECT actor FROM events WHERE position = :p"), {"p": created.json()["position"]}
        )
    assert actor == "contributor"
    me = await secured.client.get("/v1/whoami", headers=secured.as_(Role.APPROVER))
    assert me.json()["user"] == "approver" and me.json()["role"] == "approver"
    assert me.json()["authenticated"] is True


async def test_basic_auth_with_the_token_as_password_works_for_its_user_only(
    secured: Secured,
) -> None:
    token = secured.tokens[Role.VIEWER]
    assert (await secured.client.get("/v1/models", auth=("viewer", token))).status_code == 200
    wrong = await secured.client.get("/v1/models", auth=("admin", token))
    assert wrong.status_code == 401
    assert "not 'admin'" in wrong.json()["error"]["message"]


async def test_a_contributor_manages_the_model_it_registered_but_not_anothers(
    secured: Secured,
) -> None:
    own = await new_model(secured, Role.CONTRIBUTOR)
    other = await new_model(secured, Role.ADMIN)
    headers = secured.as_(Role.CONTRIBUTOR)
    mine = await secured.client.put(
        f"/v1/models/{own}/tags/team", json={"value": "a"}, headers=headers
    )
    assert mine.status_code == 200, mine.text
    theirs = await secured.client.put(
        f"/v1/models/{other}/tags/team", json={"value": "a"}, headers=headers
    )
    assert theirs.status_code == 403
    assert f"does not own model '{other}'" in theirs.json()["error"]["message"]
    assert (await secured.client.delete(f"/v1/models/{own}", headers=headers)).status_code == 200


async def test_granting_ownership_lets_a_contributor_manage_and_revoking_stops_it(
    secured: Secured,
) -> None:
    name = await new_model(secured, Role.ADMIN)
    admin, contributor = secured.as_(Role.ADMIN), secured.as_(Role.CONTRIBUTOR)
    describe = {"description": "owned"}
    assert (
        await secured.client.patch(f"/v1/models/{name}", json=describe, headers=contributor)
    ).status_code == 403
    granted = await secured.client.post(
        "/v1/admin/grants", json={"user": "contributor", "model": name}, headers=admin
    )
    assert granted.status_code == 201, granted.text
    assert granted.json()["type"] == "OwnershipGranted" and granted.json()["actor"] == "admin"
    again = await secured.client.post(
        "/v1/admin/grants", json={"user": "contributor", "model": name}, headers=admin
    )
    assert again.status_code == 409
    owners = await secured.client.get("/v1/admin/grants", params={"model": name}, headers=admin)
    assert {row["user"] for row in owners.json()} == {"admin", "contributor"}
    assert (
        await secured.client.patch(f"/v1/models/{name}", json=describe, headers=contributor)
    ).status_code == 200
    revoked = await secured.client.delete(f"/v1/admin/grants/{name}/contributor", headers=admin)
    assert revoked.status_code == 200
    assert (
        await secured.client.patch(f"/v1/models/{name}", json=describe, headers=contributor)
    ).status_code == 403


async def test_ownership_on_mlflow_paths_is_read_from_the_body(secured: Secured) -> None:
    name = await new_model(secured, Role.ADMIN)
    body = {"name": name, "key": "team", "value": "x"}
    contributor = secured.as_(Role.CONTRIBUTOR)
    path = f"{MLFLOW_PREFIXES[0]}/registered-models/set-tag"
    refused = await secured.client.post(path, json=body, headers=contributor)
    assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED"
    await AccessAdministration(secured.registry.store).grant_ownership(
        "contributor", name, CommandMeta("admin")
    )
    allowed = await secured.client.post(path, json=body, headers=contributor)
    assert allowed.status_code == 200, allowed.text
    model = await secured.client.get(f"/v1/models/{name}", headers=contributor)
    assert model.json()["tags"] == {"team": "x"}


async def test_a_grant_for_an_unknown_model_or_a_bad_user_is_refused(secured: Secured) -> None:
    admin = secured.as_(Role.ADMIN)
    missing = await secured.client.post(
        "/v1/admin/grants", json={"user": "x", "model": unique("none")}, headers=admin
    )
    assert missing.status_code == 404
    bad = await secured.client.post(
        "/v1/admin/tokens", json={"user": "anonymous", "role": "viewer"}, headers=admin
    )
    assert bad.status_code == 422
    assert "anonymous" in bad.json()["error"]["message"]
    role = await secured.client.post(
        "/v1/admin/tokens", json={"user": "x", "role": "superuser"}, headers=admin
    )
    assert role.status_code == 422


async def test_a_token_revoked_through_the_api_is_refused_at_once(secured: Secured) -> None:
    admin = secured.as_(Role.ADMIN)
    made = await secured.client.post(
        "/v1/admin/tokens", json={"user": "leaver", "role": "viewer", "label": "x"}, headers=admin
    )
    token, token_id = made.json()["token"], made.json()["token_id"]
    theirs = {"Authorization": f"Bearer {token}"}
    assert (await secured.client.get("/v1/models", headers=theirs)).status_code == 200
    listed = await secured.client.get("/v1/admin/tokens", params={"user": "leaver"}, headers=admin)
    assert [row["token_id"] for row in listed.json()] == [token_id]
    assert "token" not in listed.json()[0] and "token_hash" not in listed.json()[0]
    revoked = await secured.client.delete(f"/v1/admin/tokens/{token_id}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["type"] == "TokenRevoked"
    assert (await secured.client.get("/v1/models", headers=theirs)).status_code == 401
    twice = await secured.client.delete(f"/v1/admin/tokens/{token_id}", headers=admin)
    assert twice.status_code == 409


async def test_a_token_revoked_by_another_process_is_refused_once_notified(
    secured: Secured,
) -> None:
    elsewhere = AccessAdministration(secured.registry.store)
    issued = await elsewhere.issue_token("remote", Role.VIEWER, CommandMeta("cli:ops"))
    theirs = {"Authorization": f"Bearer {issued.token}"}
    assert await _answers(secured, theirs, 200), "a token issued elsewhere was never accepted"
    reloads = secured.guard.cache.reloads
    await elsewhere.revoke_token(issued.event.token_id, CommandMeta("cli:ops"))
    # The cache's periodic refresh is an hour here: only the NOTIFY can make this pass.
    assert await _answers(secured, theirs, 401), "a token revoked elsewhere was still accepted"
    assert secured.guard.cache.reloads > reloads


async def _answers(secured: Secured, headers: dict[str, str], status: int) -> bool:
    for _ in range(200):
        if (await secured.client.get("/v1/whoami", headers=headers)).status_code == status:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_every_refusal_is_recorded_as_an_event_in_a_refusal_stream(
    secured: Secured,
) -> None:
    path = f"/v1/models/{unique('nope')}"
    await secured.client.delete(path)
    await secured.client.delete(path, headers=secured.as_(Role.VIEWER))
    recorded = [r for r in await refusals(secured) if r["path"] == path]
    assert [(r["status"], r["actor"], r["action"], r["method"]) for r in recorded] == [
        (401, "anonymous", "manage-model", "DELETE"),
        (403, "viewer", "manage-model", "DELETE"),
    ]
    assert recorded[1]["reason"].startswith("manage-model needs the admin role; viewer has viewer")  # type: ignore[union-attr]
    assert all(str(r["stream_id"]).startswith("refusal:") for r in recorded)
    assert recorded[1]["envelope_actor"] == "viewer"


async def test_access_events_leave_the_model_projections_working(secured: Secured) -> None:
    name = await new_model(secured, Role.CONTRIBUTOR)  # after token, grant and refusal events
    listed = await secured.client.get(
        "/v1/models", params={"name": name}, headers=secured.as_(Role.VIEWER)
    )
    assert listed.status_code == 200, listed.text
    assert [m["name"] for m in listed.json()["models"]] == [name]


async def test_a_refusal_flood_is_counted_once_the_queue_is_full(secured: Secured) -> None:
    from registrar.contracts.events import AccessRefused

    recorder = RefusalRecorder(secured.registry.store, capacity=5)
    marker = unique("/flood")
    for _ in range(20):
        recorder.record(
            AccessRefused(
                actor="anonymous",
                action="read",
                reason="no token",
                method="GET",
                path=marker,
                status=401,
            )
        )
    assert recorder.dropped == 15
    await recorder.flush()
    async with secured.registry.engine.connect() as conn:
        recorded = await conn.scalar(
            text(
                "SELECT count(*) FROM events WHERE type = 'AccessRefused'"
                " AND payload::jsonb->>'path' = :path"
            ),
            {"path": marker},
        )
        dropped = await conn.scalar(
            text(
                "SELECT payload::jsonb->>'count' FROM events WHERE type = 'AccessRefusalsDropped'"
                " ORDER BY position DESC LIMIT 1"
            )
        )
    assert (recorded, dropped, recorder.dropped) == (5, "15", 0)


async def test_a_contributor_cannot_move_its_own_version_through_an_ungoverned_request(
    secured: Secured,
) -> None:
    own = await new_model(secured, Role.CONTRIBUTOR)
    contributor = secured.as_(Role.CONTRIBUTOR)
    registered = await secured.client.post(
        f"/v1/models/{own}/versions", json={"source": "s3://b/m"}, headers=contributor
    )
    assert registered.status_code == 201, registered.text
    for target in ({"stage": "Production"}, {"alias": "champion"}):
        refused = await secured.client.post(
            f"/v1/models/{own}/versions/1/transition-requests", json=target, headers=contributor
        )
        assert refused.status_code == 403, refused.text
        assert "needs the approver role" in refused.json()["error"]["message"]
    version = await secured.client.get(f"/v1/models/{own}/versions/1", headers=contributor)
    assert (version.json()["stage"], version.json()["aliases"]) == ("None", [])
    moved = await secured.client.post(
        f"/v1/models/{own}/versions/1/transition-requests",
        json={"stage": "Production"},
        headers=secured.as_(Role.APPROVER),
    )
    assert moved.status_code == 201, moved.text
    assert moved.json()["state"] == "applied"


async def test_an_idempotency_key_reused_for_another_users_token_is_refused(
    secured: Secured,
) -> None:
    key = {"Idempotency-Key": str(uuid4()), **secured.as_(Role.ADMIN)}
    first = await secured.client.post(
        "/v1/admin/tokens", json={"user": "kim", "role": "viewer"}, headers=key
    )
    assert first.status_code == 201, first.text
    reused = await secured.client.post(
        "/v1/admin/tokens", json={"user": "lee", "role": "viewer"}, headers=key
    )
    assert reused.status_code == 422, reused.text
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
