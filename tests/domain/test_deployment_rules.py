"""Deployment reports in the pure domain: what a report records, which version serves where, what
is refused, the governance document's environments, the deployer role, and drift arithmetic."""

from __future__ import annotations

from datetime import timedelta

import pytest
from scenario import AT, NAME, given, model_with_versions

from registrar.access.permissions import Action, Requirement, requirement, verdict
from registrar.contracts.commands import ReportDeployment
from registrar.contracts.deployments import Environment, Follows
from registrar.contracts.events import DeploymentReported, Event, VersionDeleted
from registrar.contracts.policies import PolicyDocument
from registrar.contracts.values import Role, Stage
from registrar.domain.approvals import DecisionContext
from registrar.domain.decider import decide
from registrar.domain.deployments import Span, drift_at
from registrar.domain.errors import Conflict, Invalid, VersionNotFound
from registrar.domain.policies import document_problems, policies_of
from registrar.domain.state import ModelState, evolve

PROD = Environment(follows=Follows(stage=Stage.PRODUCTION))
DECLARED = policies_of(PolicyDocument(environments={"prod": PROD, "staging": Environment()}), 1)


def report(version: int, status: str, where: str = "prod", **fields: object) -> ReportDeployment:
    fields.setdefault("report_id", f"r-{version}-{status}-{where}")
    return ReportDeployment(name=NAME, version=version, environment=where, status=status, **fields)


def decided(
    command: ReportDeployment, state: ModelState | None, actor: str = "argo"
) -> list[Event]:
    context = DecisionContext(actor=actor, role=Role.DEPLOYER, policies=DECLARED)
    return decide(command, state, "", context)


def after(state: ModelState | None, *commands: ReportDeployment) -> ModelState:
    """`state` after each command's events, each a minute after the one before."""
    for minute, command in enumerate(commands):
        for event in decided(command, state):
            state = evolve(state, event, AT + timedelta(minutes=minute))
    assert state is not None
    return state


# --- what a report records ----------------------------------------------------------------------


def test_a_report_records_the_versions_status_in_the_environment() -> None:
    state = given(*model_with_versions(2))

    events = decided(report(1, "serving", endpoint="https://fraud.prod", deployer="argo-cd"), state)

    assert events == [
        DeploymentReported(
            version=1,
            environment="prod",
            status="serving",
            endpoint="https://fraud.prod",
            deployer="argo-cd",
            report_id="r-1-serving-prod",
        )
    ]


def test_the_deployer_is_the_caller_unless_the_report_names_one() -> None:
    state = given(*model_with_versions(1))

    (event,) = decided(report(1, "deploying"), state, actor="ci-bot")

    assert isinstance(event, DeploymentReported) and event.deployer == "ci-bot"


def test_a_version_reported_serving_replaces_the_one_serving_there() -> None:
    state = after(given(*model_with_versions(2)), report(1, "serving"))

    events = decided(report(2, "serving"), state)
    state = after(state, report(2, "serving"))

    assert isinstance(events[0], DeploymentReported) and events[0].replaced_version == 1
    assert state.serving == {"prod": 2}
    retired = state.versions[1].deployments["prod"]
    assert (retired.status, retired.replaced_by) == ("retired", 2)


def test_serving_in_one_environment_leaves_the_others_alone() -> None:
    state = after(given(*model_with_versions(2)), report(1, "serving"))

    state = after(state, report(2, "serving", "staging"))

    assert state.serving == {"prod": 1, "staging": 2}
    assert state.versions[1].deployments["prod"].status == "serving"


def test_deploying_a_new_version_keeps_the_old_one_serving() -> None:
    state = after(given(*model_with_versions(2)), report(1, "serving"), report(2, "deploying"))

    assert state.serving == {"prod": 1}
    assert state.versions[2].deployments["prod"].status == "deploying"


@pytest.mark.parametrize("status", ["failed", "retired", "deploying"])
def test_the_serving_version_reported_otherwise_leaves_nothing_serving(status: str) -> None:
    state = after(given(*model_with_versions(1)), report(1, "serving"), report(1, status))

    assert state.serving == {}
    assert state.versions[1].deployments["prod"].status == status


def test_a_report_repeating_the_known_status_changes_nothing() -> None:
    state = after(given(*model_with_versions(1)), report(1, "serving", endpoint="https://a"))

    assert decided(report(1, "serving", endpoint="https://a", report_id="again"), state) == []


def test_a_new_endpoint_is_recorded_and_the_status_keeps_its_since() -> None:
    state = after(
        given(*model_with_versions(1)),
        report(1, "serving", endpoint="https://a"),
        report(1, "serving", endpoint="https://b", report_id="moved"),
    )

    status = state.versions[1].deployments["prod"]
    assert (status.endpoint, status.since, status.reported_at) == (
        "https://b",
        AT,
        AT + timedelta(minutes=1),
    )


# --- refusals -----------------------------------------------------------------------------------


def test_a_report_to_an_environment_the_document_does_not_declare_is_refused() -> None:
    state = given(*model_with_versions(1))

    with pytest.raises(Invalid, match=r"environment 'prdo' is not declared .*prod, staging"):
        decided(report(1, "serving", "prdo"), state)


def test_reports_are_refused_while_no_environment_is_declared() -> None:
    state = given(*model_with_versions(1))
    context = DecisionContext(actor="argo", role=Role.DEPLOYER)

    with pytest.raises(Invalid, match=r"declared: none.*\[environments\.prod\]"):
        decide(report(1, "serving"), state, "", context)


def test_a_report_of_a_version_that_does_not_exist_is_refused() -> None:
    with pytest.raises(VersionNotFound, match="has no version 3"):
        decided(report(3, "serving"), given(*model_with_versions(2)))


def test_a_deleted_version_may_only_be_reported_retired() -> None:
    state = given(*model_with_versions(1), VersionDeleted(version=1))

    with pytest.raises(Conflict, match="can only be reported retired, not serving"):
        decided(report(1, "serving"), state)
    assert len(decided(report(1, "retired"), state)) == 1


# --- the governance document's environments -------------------------------------------------------


def test_an_environment_follows_exactly_one_of_a_stage_or_an_alias() -> None:
    document = PolicyDocument(
        environments={
            "both": Environment(follows=Follows(stage=Stage.PRODUCTION, alias="champion")),
            "neither": Environment(follows=Follows()),
            "archive": Environment(follows=Follows(stage=Stage.ARCHIVED)),
            "fine": Environment(follows=Follows(alias="champion")),
        }
    )

    problems = document_problems(document)

    assert len(problems) == 3
    assert problems[0].startswith("environments.both.follows: name exactly one of stage or alias")
    assert problems[1].startswith("environments.neither.follows: name exactly one")
    assert (
        "environments.archive.follows: nothing in stage Archived is meant to serve" in problems[2]
    )


def test_an_environment_reads_from_toml_as_the_issue_writes_it() -> None:
    document = PolicyDocument.model_validate(
        {"environments": {"prod": {"follows": {"stage": "production"}}}}
    )

    assert document.environments["prod"].follows == Follows(stage=Stage.PRODUCTION)
    assert document_problems(document) == []


# --- the deployer role ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "may_report"),
    [
        (Role.VIEWER, False),
        (Role.CONTRIBUTOR, False),
        (Role.APPROVER, False),
        (Role.DEPLOYER, True),
        (Role.ADMIN, True),
    ],
)
def test_only_deployers_and_admins_may_report_deployments(role: Role, may_report: bool) -> None:
    need = requirement("POST", "/v1/deployments")

    assert need == Requirement(Action.DEPLOY)
    assert verdict("u", role, need).allowed is may_report


def test_a_deployer_reads_but_neither_contributes_nor_promotes() -> None:
    assert Role.DEPLOYER.includes(Role.VIEWER)
    for other in (Role.CONTRIBUTOR, Role.APPROVER, Role.ADMIN):
        assert not Role.DEPLOYER.includes(other)
    assert verdict("d", Role.DEPLOYER, requirement("GET", "/v1/deployments/drift")).allowed
    assert not verdict("d", Role.DEPLOYER, requirement("POST", "/v1/models")).allowed
    assert not verdict(
        "d", Role.DEPLOYER, requirement("POST", "/v1/models/m/versions/1/stage")
    ).allowed


def test_a_refused_report_says_who_may() -> None:
    refused = verdict("bob", Role.APPROVER, requirement("POST", "/v1/deployments"))

    assert refused.reason == "deploy needs the deployer role; bob has approver"


# --- drift ----------------------------------------------------------------------------------------


def test_an_environment_serving_what_its_target_names_does_not_drift() -> None:
    serving = [Span(1, AT + timedelta(minutes=5))]
    target = [Span(1, AT)]

    assert drift_at(serving, target, AT + timedelta(minutes=10)) is None


def test_a_promotion_not_yet_deployed_drifts_since_the_promotion() -> None:
    serving = [Span(1, AT + timedelta(minutes=5))]
    target = [Span(1, AT, AT + timedelta(minutes=20)), Span(2, AT + timedelta(minutes=20))]

    found = drift_at(serving, target, AT + timedelta(minutes=30))

    assert found is not None
    assert (found.expected, found.serving, found.reason) == (2, 1, "promoted")
    assert found.since == AT + timedelta(minutes=20)


def test_a_demotion_drifts_since_the_serving_version_left_its_stage() -> None:
    serving = [Span(2, AT + timedelta(minutes=5))]
    target = [Span(1, AT), Span(2, AT + timedelta(minutes=1), AT + timedelta(minutes=40))]

    found = drift_at(serving, target, AT + timedelta(minutes=50))

    assert found is not None
    assert (found.expected, found.serving, found.reason) == (1, 2, "demoted")
    assert found.since == AT + timedelta(minutes=40)


def test_a_stage_names_its_newest_version() -> None:
    serving = [Span(1, AT)]
    target = [Span(1, AT), Span(3, AT + timedelta(minutes=2))]

    found = drift_at(serving, target, AT + timedelta(minutes=3))

    assert found is not None and (found.expected, found.since) == (3, AT + timedelta(minutes=2))


def test_a_version_never_deployed_drifts_since_it_was_promoted() -> None:
    found = drift_at([], [Span(4, AT + timedelta(minutes=7))], AT + timedelta(minutes=9))

    assert found is not None
    assert (found.expected, found.serving, found.reason) == (4, None, "promoted")
    assert found.since == AT + timedelta(minutes=7)


def test_drift_that_was_resolved_and_came_back_counts_from_its_return() -> None:
    target = [Span(1, AT, AT + timedelta(minutes=10)), Span(2, AT + timedelta(minutes=10))]
    serving = [
        Span(1, AT, AT + timedelta(minutes=15)),
        Span(2, AT + timedelta(minutes=15), AT + timedelta(minutes=25)),
        Span(1, AT + timedelta(minutes=25)),
    ]

    found = drift_at(serving, target, AT + timedelta(minutes=30))

    assert found is not None and found.since == AT + timedelta(minutes=25)
    assert found.reason == "promoted"
