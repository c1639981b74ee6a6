"""The permission table and the access rules, without a database: which action each request is,
which role each action needs, when owning the model is enough, and what a token change decides."""

from __future__ import annotations

import base64
import hashlib
from uuid import uuid4

import pytest

from registrar.access import rules
from registrar.access.mode import auth_mode, is_loopback
from registrar.access.permissions import (
    Action,
    Requirement,
    needs_ownership_check,
    requirement,
    verdict,
)
from registrar.access.tokens import (
    BadCredentials,
    Credentials,
    credentials_from,
    new_token,
    token_hash,
)
from registrar.contracts.events import OwnershipGranted, OwnershipRevoked, TokenIssued, TokenRevoked
from registrar.contracts.values import Role
from registrar.domain.errors import Conflict, Invalid, NotFound

MLFLOW = "/api/2.0/mlflow/"


@pytest.mark.parametrize(
    ("method", "path", "action", "model"),
    [
        ("GET", "/v1/models", Action.READ, None),
        ("GET", "/v1/models/m/versions/1", Action.READ, None),
        ("GET", "/v1/runs/r1", Action.READ, None),
        ("GET", "/v1/projections", Action.READ, None),
        ("GET", "/v1/audit/verify", Action.READ, None),
        ("POST", "/v1/models", Action.CONTRIBUTE, None),
        ("PATCH", "/v1/models/m", Action.MANAGE_MODEL, "m"),
        ("DELETE", "/v1/models/m", Action.MANAGE_MODEL, "m"),
        ("PUT", "/v1/models/m/tags/team", Action.MANAGE_MODEL, "m"),
        ("DELETE", "/v1/models/m/tags/team", Action.MANAGE_MODEL, "m"),
        ("PUT", "/v1/models/m/aliases/champion", Action.PROMOTE, "m"),
        ("DELETE", "/v1/models/m/aliases/champion", Action.PROMOTE, "m"),
        ("POST", "/v1/models/m/versions", Action.CONTRIBUTE, "m"),
        ("PATCH", "/v1/models/m/versions/2", Action.CONTRIBUTE, "m"),
        ("DELETE", "/v1/models/m/versions/2", Action.MANAGE_MODEL, "m"),
        ("PUT", "/v1/models/m/versions/2/tags/k", Action.CONTRIBUTE, "m"),
        ("PATCH", "/v1/models/m/versions/2/card", Action.CONTRIBUTE, "m"),
        ("POST", "/v1/models/m/versions/2/stage", Action.PROMOTE, "m"),
        ("POST", "/v1/models/m/versions/2/transition-requests", Action.CONTRIBUTE, "m"),
        ("POST", "/v1/transition-requests/abc/approve", Action.CONTRIBUTE, None),
        ("POST", "/v1/training-runs", Action.CONTRIBUTE, None),
        ("GET", "/v1/admin/tokens", Action.ADMINISTER, None),
        ("POST", "/v1/admin/tokens", Action.ADMINISTER, None),
        ("DELETE", "/v1/admin/grants/m/alice", Action.ADMINISTER, None),
        ("PUT", "/v1/policies/Production", Action.ADMINISTER, None),
        ("POST", "/v1/something-new", Action.ADMINISTER, None),
    ],
)
def test_each_native_route_is_the_action_the_table_names(
    method: str, path: str, action: Action, model: str | None
) -> None:
    assert requirement(method, path) == Requirement(action, model)


@pytest.mark.parametrize(
    ("method", "endpoint", "action"),
    [
        ("GET", "registered-models/get", Action.READ),
        ("GET", "model-versions/search", Action.READ),
        ("POST", "registered-models/get-latest-versions", Action.READ),
        ("POST", "runs/search", Action.READ),
        ("POST", "registered-models/create", Action.CONTRIBUTE),
        ("POST", "model-versions/create", Action.CONTRIBUTE),
        ("PATCH", "model-versions/update", Action.CONTRIBUTE),
        ("POST", "model-versions/set-tag", Action.CONTRIBUTE),
        ("POST", "runs/create", Action.CONTRIBUTE),
        ("PATCH", "registered-models/update", Action.MANAGE_MODEL),
        ("POST", "registered-models/rename", Action.MANAGE_MODEL),
        ("DELETE", "registered-models/delete", Action.MANAGE_MODEL),
        ("POST", "registered-models/set-tag", Action.MANAGE_MODEL),
        ("DELETE", "model-versions/delete", Action.MANAGE_MODEL),
        ("POST", "model-versions/transition-stage", Action.CONTRIBUTE),
        ("POST", "registered-models/alias", Action.PROMOTE),
        ("DELETE", "registered-models/alias", Action.PROMOTE),
    ],
)
def test_each_mlflow_endpoint_is_the_action_the_table_names(
    method: str, endpoint: str, action: Action
) -> None:
    for prefix in (MLFLOW, "/ajax-api/2.0/mlflow/"):
        need = requirement(method, prefix + endpoint)
        assert need is not None and need.action == action
        assert need.model_in_body == (action == Action.MANAGE_MODEL)


def test_health_and_the_api_docs_need_no_token() -> None:
    assert requirement("GET", "/healthz") is None
    assert requirement("GET", "/openapi.json") is None
    assert requirement("GET", "/healthz/more") is not None


@pytest.mark.parametrize(
    ("action", "lowest"),
    [
        (Action.READ, Role.VIEWER),
        (Action.CONTRIBUTE, Role.CONTRIBUTOR),
        (Action.PROMOTE, Role.APPROVER),
        (Action.MANAGE_MODEL, Role.ADMIN),
        (Action.ADMINISTER, Role.ADMIN),
    ],
)
def test_an_action_is_allowed_from_its_role_up_and_refused_below(
    action: Action, lowest: Role
) -> None:
    for role in Role:
        assert verdict("u", role, Requirement(action)).allowed == role.includes(lowest)


def test_an_owner_with_a_contributor_token_may_manage_the_model() -> None:
    need = Requirement(Action.MANAGE_MODEL, "m")
    assert verdict("alice", Role.CONTRIBUTOR, need, owns_model=True).allowed
    assert verdict("alice", Role.APPROVER, need, owns_model=True).allowed


def test_a_contributor_who_does_not_own_the_model_is_told_so() -> None:
    refused = verdict("bob", Role.CONTRIBUTOR, Requirement(Action.MANAGE_MODEL, "m"))
    assert not refused.allowed
    assert (
        refused.reason
        == "manage-model needs the admin role; bob has contributor and does not own model 'm'"
    )


def test_an_owners_viewer_token_stays_read_only() -> None:
    need = Requirement(Action.MANAGE_MODEL, "m")
    refused = verdict("alice", Role.VIEWER, need, owns_model=True)
    assert not refused.allowed
    assert "with a contributor token" in refused.reason
    assert not needs_ownership_check(Role.VIEWER, need)


def test_owning_the_model_does_not_allow_promoting_it() -> None:
    need = Requirement(Action.PROMOTE, "m")
    assert not verdict("alice", Role.CONTRIBUTOR, need, owns_model=True).allowed
    assert not needs_ownership_check(Role.CONTRIBUTOR, need)


def test_ownership_is_looked_up_only_when_the_role_falls_short() -> None:
    need = Requirement(Action.MANAGE_MODEL, "m")
    assert needs_ownership_check(Role.CONTRIBUTOR, need)
    assert needs_ownership_check(Role.APPROVER, need)
    assert not needs_ownership_check(Role.ADMIN, need)


def test_a_bearer_header_carries_the_token() -> None:
    assert credentials_from("Bearer rgt_abc") == Credentials("rgt_abc")
    assert credentials_from("bearer  rgt_abc ") == Credentials("rgt_abc")
    assert credentials_from(None) is None


def test_basic_auth_carries_the_user_and_the_token_as_password() -> None:
    header = "Basic " + base64.b64encode(b"alice:rgt_abc").decode()
    assert credentials_from(header) == Credentials("rgt_abc", "alice")


@pytest.mark.parametrize("header", ["Token x", "Bearer", "Basic !!!", "Basic " + "YWxpY2U="])
def test_a_malformed_authorization_header_is_refused_with_the_reason(header: str) -> None:
    with pytest.raises(BadCredentials):
        credentials_from(header)


def test_tokens_are_random_and_kept_as_their_sha256() -> None:
    first, second = new_token(), new_token()
    assert first != second and first.startswith("rgt_") and len(first) > 40
    assert token_hash(first) == hashlib.sha256(first.encode()).hexdigest()


@pytest.mark.parametrize(
    ("setting", "flag", "host", "required"),
    [
        ("", False, "127.0.0.1", False),
        ("", False, "::1", False),
        ("", False, "localhost", False),
        ("", True, "127.0.0.1", True),
        ("required", False, "127.0.0.1", True),
        ("optional", False, "0.0.0.0", True),
        ("", False, "10.1.2.3", True),
        ("", False, "registrar.internal", True),
    ],
)
def test_authentication_is_required_beyond_loopback_and_opt_in_on_it(
    setting: str, flag: bool, host: str, required: bool
) -> None:
    assert auth_mode(setting, flag, host).required == required


def test_an_unknown_auth_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="REGISTRAR_AUTH must be"):
        auth_mode("yes", False, "127.0.0.1")
    assert is_loopback("127.0.0.2") and not is_loopback("0.0.0.0")


def test_issuing_a_token_decides_token_issued_with_its_hash_only() -> None:
    token_id = uuid4()
    event = rules.issue_token("alice@example.com", Role.APPROVER, "laptop", token_id, "ab" * 32)
    assert event == TokenIssued(
        token_id=token_id,
        user="alice@example.com",
        role=Role.APPROVER,
        label="laptop",
        token_hash="ab" * 32,
    )


@pytest.mark.parametrize("user", ["", "anonymous", "a b", "x" * 129, "al/ice"])
def test_a_token_for_a_bad_user_name_is_refused(user: str) -> None:
    with pytest.raises(Invalid):
        rules.issue_token(user, Role.VIEWER, "", uuid4(), "ab" * 32)


def test_revoking_a_token_twice_is_refused() -> None:
    token_id = uuid4()
    state = rules.fold([rules.issue_token("alice", Role.VIEWER, "", token_id, "00" * 32)])
    revoked = rules.revoke_token(state, "alice", token_id, "left")
    assert revoked == TokenRevoked(token_id=token_id, user="alice", reason="left")
    with pytest.raises(Conflict, match="already revoked"):
        rules.revoke_token(rules.fold([revoked], state), "alice", token_id)


def test_revoking_a_token_the_user_does_not_hold_is_not_found() -> None:
    with pytest.raises(NotFound):
        rules.revoke_token(rules.AccessState(), "alice", uuid4())


def test_granting_ownership_to_an_owner_is_refused_and_revoking_from_a_stranger_too() -> None:
    granted = rules.grant_ownership(frozenset({"bob"}), "alice", "s1", "m")
    assert granted == OwnershipGranted(user="alice", model_id="s1", model_name="m")
    with pytest.raises(Conflict, match="already owns"):
        rules.grant_ownership(frozenset({"alice"}), "alice", "s1", "m")
    assert rules.revoke_ownership(frozenset({"alice"}), "alice", "s1", "m") == OwnershipRevoked(
        user="alice", model_id="s1", model_name="m"
    )
    with pytest.raises(NotFound, match="does not own"):
        rules.revoke_ownership(frozenset({"bob"}), "alice", "s1", "m")
