"""The permission table: which action each request is (by method and path), which role each action
needs, and when owning the model is enough. Pure: no I/O, tested on its own."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from registrar.contracts import commands as c
from registrar.contracts.values import Role
from registrar.domain.approvals import MOVER_ROLE


class Action(str, Enum):
    READ = "read"
    """Any GET: models, versions, runs, projections, audit."""
    CONTRIBUTE = "contribute"
    """Register models and versions, record runs, tag and describe versions, request transitions."""
    MANAGE_MODEL = "manage-model"
    """Describe, rename, tag or delete a model, delete its versions: its owners, or an admin."""
    PROMOTE = "promote"
    """Move a version between stages, set or delete an alias."""
    ADMINISTER = "administer"
    """Tokens, ownership grants, policies, and any write the table does not name."""
    DEPLOY = "deploy"
    """Report a version's deployment status: deployers and admins (Role.includes: no other
    role includes deployer, so contributors and approvers may not)."""


MINIMUM_ROLE = {
    Action.READ: Role.VIEWER,
    Action.CONTRIBUTE: Role.CONTRIBUTOR,
    Action.MANAGE_MODEL: Role.ADMIN,
    Action.PROMOTE: MOVER_ROLE,
    Action.ADMINISTER: Role.ADMIN,
    Action.DEPLOY: Role.DEPLOYER,
}
"""The role an action needs from a caller who does not own the model."""

OWNER_ACTIONS = frozenset({Action.MANAGE_MODEL})
"""What owning the model allows below the action's role..."""
OWNER_MINIMUM_ROLE = Role.CONTRIBUTOR
"""...with a token of at least this role: a viewer token stays read-only, even an owner's."""

MLFLOW_PREFIXES = (
    "/api/2.0/mlflow/",
    "/ajax-api/2.0/mlflow/",
    "/api/2.0/mlflow-artifacts/",
    "/ajax-api/2.0/mlflow-artifacts/",
)
OPEN_PATHS = frozenset({"/healthz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
"""Health and the API's own documentation: no token needed."""
DOCS_ASSETS = "/static/docs"
"""Where the documentation pages' scripts and styles are served (services/api/docs_pages.py):
open too, or /docs would show a blank page to a browser that has no token to send."""
UI_OPEN_PATHS = frozenset({"/", "/ui/login"})
"""The root (a redirect to the web UI) and the UI's sign-in page (registrar.ui): no token."""
UI_ASSETS = "/ui/static"
"""The UI's style sheet and icons: open, so the sign-in page has them."""


@dataclass(frozen=True, slots=True)
class Requirement:
    action: Action
    model: str | None = None
    """The model's name, when the path holds it."""
    model_in_body: bool = False
    """The name is the JSON body's `name` field (MLflow's POST, PATCH and DELETE)."""

    @property
    def owners_may(self) -> bool:
        return self.action in OWNER_ACTIONS


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reason: str = ""


_NAME = r"(?P<model>[^/]+)"
_VERSION = _NAME + r"/versions/[^/]+"
_NATIVE_WRITES: list[tuple[frozenset[str], re.Pattern[str], Action]] = [
    (frozenset(methods.split()), re.compile(pattern), action)
    for methods, pattern, action in (
        ("POST", r"/v1/models", Action.CONTRIBUTE),
        ("PATCH DELETE", rf"/v1/models/{_NAME}", Action.MANAGE_MODEL),
        ("PUT DELETE", rf"/v1/models/{_NAME}/tags/[^/]+", Action.MANAGE_MODEL),
        ("PUT DELETE", rf"/v1/models/{_NAME}/aliases/[^/]+", Action.PROMOTE),
        ("POST", rf"/v1/models/{_NAME}/versions", Action.CONTRIBUTE),
        ("PATCH", rf"/v1/models/{_VERSION}", Action.CONTRIBUTE),
        ("DELETE", rf"/v1/models/{_VERSION}", Action.MANAGE_MODEL),
        ("PUT DELETE", rf"/v1/models/{_VERSION}/tags/[^/]+", Action.CONTRIBUTE),
        ("PATCH PUT", rf"/v1/models/{_VERSION}/card", Action.CONTRIBUTE),
        ("PUT DELETE", rf"/v1/models/{_VERSION}/artifacts/.+", Action.CONTRIBUTE),
        ("POST", rf"/v1/models/{_VERSION}/artifacts/seal", Action.CONTRIBUTE),
        ("POST", rf"/v1/models/{_VERSION}/evaluations", Action.CONTRIBUTE),
        # Who may set a tier directly is the governance document's to say: the decider checks.
        ("POST", rf"/v1/models/{_NAME}/risk-assessment", Action.CONTRIBUTE),
        ("POST", rf"/v1/models/{_VERSION}/compliance/validate", Action.READ),
        ("POST", rf"/v1/models/{_VERSION}/stage", Action.PROMOTE),
        ("POST", rf"/v1/models/{_VERSION}/transition-requests", Action.CONTRIBUTE),
        # A rollback is a request too: the policy's rollback (or promotion) rule says who approves.
        ("POST", rf"/v1/models/{_NAME}/rollback", Action.CONTRIBUTE),
        # Who may approve is the policy's to say (its approver role): the workflow checks it.
        ("POST", r"/v1/transition-requests/[^/]+/(approve|reject|cancel)", Action.CONTRIBUTE),
        ("POST", r"/v1/training-runs", Action.CONTRIBUTE),
        # The web UI's forms, as the /v1 routes that do the same (its pages are GETs: READ).
        ("POST", r"/ui/approvals/[^/]+/(approve|reject)", Action.CONTRIBUTE),
        ("POST", r"/ui/logout", Action.READ),
        ("POST", r"/v1/deployments", Action.DEPLOY),
    )
]

_MLFLOW_MANAGE = frozenset(
    {
        "registered-models/update",
        "registered-models/rename",
        "registered-models/delete",
        "registered-models/set-tag",
        "registered-models/delete-tag",
        "model-versions/delete",
    }
)
_MLFLOW_PROMOTE = frozenset({"registered-models/alias"})
"""transition-stage is not here: to a governed stage it makes a transition request, which a
contributor may ask for; to any other stage the decider requires the mover role itself."""
_MLFLOW_READ_POSTS = frozenset({"registered-models/get-latest-versions"})
"""POSTs that only read (besides every `.../search`)."""


_COMMAND_ACTIONS: dict[type, Action] = {
    c.RegisterModel: Action.CONTRIBUTE,
    c.UpdateModelDescription: Action.MANAGE_MODEL,
    c.SetModelTag: Action.MANAGE_MODEL,
    c.DeleteModelTag: Action.MANAGE_MODEL,
    c.RenameModel: Action.MANAGE_MODEL,
    c.DeleteModel: Action.MANAGE_MODEL,
    c.RegisterVersion: Action.CONTRIBUTE,
    c.UpdateVersionDescription: Action.CONTRIBUTE,
    c.SetVersionTag: Action.CONTRIBUTE,
    c.DeleteVersionTag: Action.CONTRIBUTE,
    c.RecordMetrics: Action.CONTRIBUTE,
    c.UpdateModelCard: Action.CONTRIBUTE,
    c.SealArtifacts: Action.CONTRIBUTE,
    c.RecordEvaluation: Action.CONTRIBUTE,
    c.AssessRisk: Action.CONTRIBUTE,
    c.DeleteVersion: Action.MANAGE_MODEL,
    c.TransitionStage: Action.PROMOTE,
    c.SetAlias: Action.PROMOTE,
    c.DeleteAlias: Action.PROMOTE,
    c.RequestTransition: Action.CONTRIBUTE,
    c.RequestRollback: Action.CONTRIBUTE,
    c.ApproveTransition: Action.CONTRIBUTE,
    c.RejectTransition: Action.CONTRIBUTE,
    c.CancelTransition: Action.CONTRIBUTE,
    c.ReportDeployment: Action.DEPLOY,
}
"""Each command as the HTTP route that issues it is classed in the table above."""


def command_requirement(command: c.Command) -> Requirement:
    """What a command needs when it arrives without a path (a Kafka command message): the same
    action as the route that issues it over HTTP, on the model it names."""
    return Requirement(_COMMAND_ACTIONS[type(command)], command.name)


def is_mlflow_path(path: str) -> bool:
    return path.startswith(MLFLOW_PREFIXES)


def is_webhook_path(path: str) -> bool:
    """Webhooks, native and MLflow's: admins only, reads too, as MLflow's own server has it (a
    webhook's URL may be a capability; its deliveries say what happens in the registry)."""
    webhooks = ("/v1/webhooks", "/api/2.0/mlflow/webhooks", "/ajax-api/2.0/mlflow/webhooks")
    return any(path == w or path.startswith(w + "/") for w in webhooks)


def requirement(method: str, path: str) -> Requirement | None:
    """What a request needs, or None for the open paths (health, API docs)."""
    if path in OPEN_PATHS or path.startswith(DOCS_ASSETS + "/"):
        return None
    if path in UI_OPEN_PATHS or path.startswith(UI_ASSETS + "/"):
        return None
    method = method.upper()
    if path.startswith(("/v1/admin/", "/v1/artifacts/")) or path == "/v1/admin":
        # /v1/artifacts/verify re-reads every stored blob; gc deletes: admins only, GET or not.
        return Requirement(Action.ADMINISTER)
    if is_webhook_path(path):
        return Requirement(Action.ADMINISTER)
    for prefix in MLFLOW_PREFIXES:
        if path.startswith(prefix):
            return _mlflow_requirement(method, path.removeprefix(prefix))
    if method in ("GET", "HEAD", "OPTIONS"):
        return Requirement(Action.READ)
    for methods, pattern, action in _NATIVE_WRITES:
        match = pattern.fullmatch(path)
        if match is not None and method in methods:
            return Requirement(action, match.groupdict().get("model"))
    return Requirement(Action.ADMINISTER)


def _mlflow_requirement(method: str, endpoint: str) -> Requirement:
    endpoint = endpoint.strip("/")
    if method in ("GET", "HEAD", "OPTIONS"):
        return Requirement(Action.READ)
    if endpoint.endswith("/search") or endpoint in _MLFLOW_READ_POSTS:
        return Requirement(Action.READ)
    if endpoint in _MLFLOW_MANAGE:
        return Requirement(Action.MANAGE_MODEL, model_in_body=True)
    if endpoint in _MLFLOW_PROMOTE:
        return Requirement(Action.PROMOTE)
    return Requirement(Action.CONTRIBUTE)


def needs_ownership_check(role: Role, need: Requirement) -> bool:
    """Whether the role alone falls short but owning the model would do."""
    return (
        not role.includes(MINIMUM_ROLE[need.action])
        and need.owners_may
        and role.includes(OWNER_MINIMUM_ROLE)
    )


def verdict(user: str, role: Role, need: Requirement, owns_model: bool = False) -> Verdict:
    """Whether `user` with `role` may do what `need` describes (`owns_model`: of its model)."""
    minimum = MINIMUM_ROLE[need.action]
    if role.includes(minimum):
        return Verdict(True)
    if need.owners_may and role.includes(OWNER_MINIMUM_ROLE) and owns_model:
        return Verdict(True)
    reason = f"{need.action.value} needs the {minimum.value} role; {user} has {role.value}"
    if need.owners_may:
        model = f"model {need.model!r}" if need.model else "the model"
        reason += (
            f" and does not own {model}"
            if role.includes(OWNER_MINIMUM_ROLE)
            else f" (owners of {model} may too, with a {OWNER_MINIMUM_ROLE.value} token)"
        )
    return Verdict(False, reason)
