"""The client's deployment methods against a running Registrar, each test once per flavour (Client,
AsyncClient): a deployer reports and reads where its versions run (its own reports, at once),
a version's own view, drift after a promotion and as of an earlier instant, a report sent again
recorded once, and an undeclared environment raised as InvalidRequest."""

from __future__ import annotations

import uuid

import pytest

from registrar import InvalidRequest

from .support import AnyClient, done, unique

ENVIRONMENTS = {"environments": {"prod": {"follows": {"stage": "Production"}}}}


@pytest.fixture(autouse=True)
async def declared(client: AnyClient) -> None:
    await done(client.apply_policy(ENVIRONMENTS))


async def new_model(client: AnyClient, versions: int = 2) -> str:
    name = unique("churn")
    await done(client.create_model(name))
    for number in range(1, versions + 1):
        await done(client.register_version(name, f"s3://models/{name}/{number}"))
    return name


async def test_a_deployer_reports_and_reads_where_its_versions_run(client: AnyClient) -> None:
    name = await new_model(client)

    reported = await done(
        client.report_deployment(
            name, 1, "prod", "serving", endpoint="https://churn", deployer="argo"
        )
    )

    assert (reported.model, reported.version, reported.status) == (name, 1, "serving")
    assert reported.recorded and client.position == reported.position  # a write: it advances
    listed = await done(client.deployments(environment="prod", model=name))
    (row,) = listed.deployments
    assert (row.version, row.status, row.deployer, row.endpoint) == (
        1,
        "serving",
        "argo",
        "https://churn",
    )
    assert row.since == reported.reported_at
    assert (await done(client.model_deployments(name))).deployments == [row]
    assert (await done(client.version_deployments(name, 1))).deployments == [row]


async def test_drift_shows_a_promotion_not_yet_deployed_now_and_not_before(
    client: AnyClient,
) -> None:
    name = await new_model(client)
    await done(client.set_stage(name, 1, "Production"))
    deployed = await done(client.report_deployment(name, 1, "prod", "serving"))

    await done(client.set_stage(name, 2, "Production", archive_existing=True))

    (drift,) = (await done(client.drift(model=name))).drift
    assert (drift.environment, drift.expected_version, drift.serving_version) == ("prod", 2, 1)
    assert drift.reason == "promoted" and drift.follows.stage == "Production"
    before = await done(client.drift(model=name, as_of=deployed.reported_at))
    assert before.drift == []


async def test_a_report_sent_again_with_its_report_id_is_recorded_once(client: AnyClient) -> None:
    name = await new_model(client)
    report_id = str(uuid.uuid4())

    first = await done(client.report_deployment(name, 1, "prod", "deploying", report_id=report_id))
    again = await done(client.report_deployment(name, 1, "prod", "deploying", report_id=report_id))

    assert again == first


async def test_an_undeclared_environment_raises_invalid_request(client: AnyClient) -> None:
    name = await new_model(client)

    with pytest.raises(InvalidRequest, match="environment 'prdo' is not declared") as refused:
        await done(client.report_deployment(name, 1, "prdo", "serving"))

    assert refused.value.status == 422
    assert (await done(client.model_deployments(name))).deployments == []
