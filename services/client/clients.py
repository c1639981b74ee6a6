"""`Client` and `AsyncClient`: the native API's endpoints (listed once, on `Surface`) bound to the
blocking or the asyncio session."""

from __future__ import annotations

from registrar.client import (
    access_calls,
    approval_calls,
    deployment_calls,
    evaluation_calls,
    history_calls,
    model_calls,
    version_calls,
)
from registrar.client.artifact_transfers import AsyncArtifactTransfers, SyncArtifactTransfers
from registrar.client.binding import endpoint, listing
from registrar.client.sessions import AsyncSession, SyncSession


class Surface:
    """Every endpoint of the /v1 API, once. Each attribute is a builder from an *_calls module
    wrapped in `endpoint` (one request, one result) or `listing` (every item, page by page)."""

    # Models and aliases
    create_model = endpoint(model_calls.create_model)
    get_model = endpoint(model_calls.get_model)
    list_models = listing(model_calls.list_models)
    update_model = endpoint(model_calls.update_model)
    delete_model = endpoint(model_calls.delete_model)
    set_model_tag = endpoint(model_calls.set_model_tag)
    delete_model_tag = endpoint(model_calls.delete_model_tag)
    get_alias = endpoint(model_calls.get_alias)
    set_alias = endpoint(model_calls.set_alias)
    delete_alias = endpoint(model_calls.delete_alias)

    # Versions and runs
    register_version = endpoint(version_calls.register_version)
    get_version = endpoint(version_calls.get_version)
    list_versions = listing(version_calls.list_versions)
    search_versions = listing(version_calls.search_versions)
    update_version = endpoint(version_calls.update_version)
    update_model_card = endpoint(version_calls.update_model_card)
    model_card = endpoint(version_calls.model_card)
    set_stage = endpoint(version_calls.set_stage)
    set_version_tag = endpoint(version_calls.set_version_tag)
    delete_version_tag = endpoint(version_calls.delete_version_tag)
    delete_version = endpoint(version_calls.delete_version)
    get_run = endpoint(version_calls.get_run)

    # Evaluations
    record_evaluation = endpoint(evaluation_calls.record_evaluation)
    evaluations = endpoint(evaluation_calls.evaluations)
    get_evaluation = endpoint(evaluation_calls.get_evaluation)

    # Transition requests, approvals and promotion policies
    request_transition = endpoint(approval_calls.request_transition)
    rollback = endpoint(approval_calls.rollback)
    get_request = endpoint(approval_calls.get_request)
    approve = endpoint(approval_calls.approve)
    reject = endpoint(approval_calls.reject)
    cancel = endpoint(approval_calls.cancel)
    approvals = listing(approval_calls.approvals)
    policy = endpoint(approval_calls.policy)
    apply_policy = endpoint(approval_calls.apply_policy)

    # Deployments: reports, what runs where, drift
    report_deployment = endpoint(deployment_calls.report_deployment)
    deployments = endpoint(deployment_calls.deployments)
    model_deployments = endpoint(deployment_calls.model_deployments)
    version_deployments = endpoint(deployment_calls.version_deployments)
    drift = endpoint(deployment_calls.drift)

    # Lineage, audit trail and point-in-time history
    lineage = endpoint(history_calls.lineage)
    impact = endpoint(history_calls.impact)
    audit = listing(history_calls.audit)
    as_of = endpoint(history_calls.as_of)
    aliases_as_of = endpoint(history_calls.aliases_as_of)
    stage_holders = endpoint(history_calls.stage_holders)
    timeline = endpoint(history_calls.timeline)

    # Access
    whoami = endpoint(access_calls.whoami)


class Client(SyncArtifactTransfers, SyncSession, Surface):
    """Registrar's native API, blocking::

        with Client("http://127.0.0.1:8080", token="rgt_...") as registry:
            version = registry.register_version("fraud", "s3://models/fraud/7")
            for v in registry.list_versions("fraud", stage="Production"): ...

    `base_url` defaults to $REGISTRAR_URL (else http://127.0.0.1:8080), `token` to
    $REGISTRAR_TOKEN (sent as `Authorization: Bearer <token>`). `headers` go on every request
    (e.g. X-Registrar-Actor when authentication is off), `timeout` is httpx's, and `transport` a
    sync httpx transport to use instead of the network's.

    Methods return the API's pydantic models (registrar.contracts.api); list methods return an
    iterator over every item, fetching pages as it goes. Refusals raise ClientError subclasses.
    Reads, and writes (each carries an Idempotency-Key, so a repeat applies once), are retried
    `retries` times on a 503 or no answer, `backoff` seconds doubling between tries. Lists,
    searches, lineage, audit and history wait until they include this client's own writes
    (`min_position`)."""


class AsyncClient(AsyncArtifactTransfers, AsyncSession, Surface):
    """Registrar's native API for asyncio: the same methods as Client, awaited; list methods
    return async iterators::

        async with AsyncClient() as registry:
            model = await registry.get_model("fraud")
            async for row in registry.audit(model="fraud"): ...

    `transport` is an httpx async transport (e.g. httpx.ASGITransport(app) in-process)."""
