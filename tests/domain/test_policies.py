"""The promotion policy, pure: the gate parser (and its reasons for what it cannot parse), gates
evaluated on a version with the value they saw, and applying a policy (admin only)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from scenario import given, model_with_versions, version_registered

from registrar.contracts.commands import UpdateModelCard
from registrar.contracts.events import RiskAssessed
from registrar.contracts.model_card import ModelCardPatch
from registrar.contracts.policies import (
    ComplianceProfile,
    ComplianceSettings,
    GateCheck,
    PolicyApplied,
    PolicyDocument,
    PolicyRule,
    Requirement,
    Scope,
    ScopeMatch,
)
from registrar.contracts.values import DatasetRef, Role, Stage
from registrar.domain.decider import decide
from registrar.domain.errors import Forbidden, Invalid
from registrar.domain.policies import (
    NO_POLICIES,
    GateSyntaxError,
    Target,
    decide_policy,
    evolve_policies,
    parse_gate,
)
from registrar.domain.state import ModelState


def test_a_metric_threshold_is_parsed_into_subject_operator_and_number() -> None:
    gate = parse_gate("metrics.auc >= 0.85")

    assert (gate.subject, gate.op, gate.threshold) == ("metrics.auc", ">=", 0.85)


def test_a_bare_lineage_gate_means_at_least_one() -> None:
    gate = parse_gate("lineage.datasets")

    assert (gate.subject, gate.op, gate.threshold) == ("lineage.datasets", ">=", 1.0)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("metrics.auc", "compares the metric with a number"),
        ("metrics.auc >= high", "'high' is not a number"),
        ("metrics.auc >= nan", "finite number"),
        ("metrics. >= 1", "name the metric"),
        ("model_card.purpose", "has no field 'purpose'"),
        ("model_card.intended_use == 'x'", "write model_card.intended_use alone"),
        ("lineage.datasets >= 1.5", "whole number"),
        ("artifact.digest == 'sha256:1'", "write it alone"),
        ("accuracy > 0.9", "unknown subject 'accuracy'"),
        ("metrics.auc => 0.9", "cannot read the comparison"),
        ("metrics.auc >= 0.9 >= 1", "cannot read the comparison"),
        ("   ", "empty gate"),
    ],
)
def test_a_gate_that_cannot_be_parsed_says_why(text: str, reason: str) -> None:
    with pytest.raises(GateSyntaxError, match=reason):
        parse_gate(text)


def _version(**fields: object):  # type: ignore[no-untyped-def]
    state = given(*model_with_versions(0), version_registered(1, **fields))
    assert state is not None
    return state, state.versions[1]


def test_gates_report_the_value_they_saw() -> None:
    model, version = _version(
        metrics={"auc": 0.91, "demographic_parity_diff": 0.2},
        datasets=[DatasetRef(name="clicks")],
        digest="sha256:ab",
    )

    checks = [
        parse_gate(text).check(Target(model, version))
        for text in (
            "metrics.auc >= 0.85",
            "metrics.demographic_parity_diff <= 0.1",
            "metrics.recall > 0.5",
            "lineage.datasets >= 1",
            "lineage.parents",
            "artifact.digest",
            "model_card.intended_use",
        )
    ]

    assert checks == [
        GateCheck(gate="metrics.auc >= 0.85", passed=True, seen=0.91),
        GateCheck(gate="metrics.demographic_parity_diff <= 0.1", passed=False, seen=0.2),
        GateCheck(gate="metrics.recall > 0.5", passed=False, seen=None),
        GateCheck(gate="lineage.datasets >= 1", passed=True, seen=1),
        GateCheck(gate="lineage.parents", passed=False, seen=0),
        GateCheck(gate="artifact.digest", passed=True, seen="sha256:ab"),
        GateCheck(gate="model_card.intended_use", passed=False, seen=None),
    ]


def test_a_card_gate_passes_once_the_field_is_filled_in() -> None:
    state, _ = _version()
    patch = ModelCardPatch(intended_use="Scoring card payments")
    events = decide(UpdateModelCard(name=state.name, version=1, card=patch), state)
    after = given(*model_with_versions(1), *events)
    assert after is not None

    check = parse_gate("model_card.intended_use").check(Target(after, after.versions[1]))

    assert check == GateCheck(
        gate="model_card.intended_use", passed=True, seen="Scoring card payments"
    )


PRODUCTION_POLICY = PolicyDocument(
    stages={
        Stage.PRODUCTION: PolicyRule(
            approvals=2, approver_role=Role.APPROVER, gates=["metrics.auc >= 0.85"]
        )
    },
    aliases={"champion": PolicyRule(approvals=1, approver_role=Role.ADMIN)},
)


def test_applying_a_policy_records_it_with_the_next_version() -> None:
    events = decide_policy(PRODUCTION_POLICY, NO_POLICIES, Role.ADMIN)

    assert events == [PolicyApplied(version=1, **dict(PRODUCTION_POLICY))]
    in_force = evolve_policies(NO_POLICIES, events[0])
    assert in_force.version == 1
    assert in_force.for_stage(Stage.PRODUCTION) is not None
    assert in_force.for_stage(Stage.STAGING) is None
    assert in_force.for_alias("champion") is not None


def test_applying_the_policy_in_force_again_changes_nothing() -> None:
    in_force = evolve_policies(
        NO_POLICIES, decide_policy(PRODUCTION_POLICY, NO_POLICIES, Role.ADMIN)[0]
    )

    assert decide_policy(PRODUCTION_POLICY, in_force, Role.ADMIN) == []


def test_only_an_admin_may_apply_a_policy() -> None:
    with pytest.raises(Forbidden, match="needs the admin role; you hold approver"):
        decide_policy(PRODUCTION_POLICY, NO_POLICIES, Role.APPROVER)


def test_a_policy_with_an_unparseable_gate_is_refused_naming_the_gate_and_why() -> None:
    document = PolicyDocument(
        stages={Stage.PRODUCTION: PolicyRule(gates=["metrics.auc >= 0.85", "metrics.auc >> 1"])}
    )

    with pytest.raises(Invalid) as refused:
        decide_policy(document, NO_POLICIES, Role.ADMIN)

    assert "stages.Production.gates[1]" in refused.value.message
    assert "cannot read the comparison" in refused.value.message
    assert "gates[0]" not in refused.value.message


def test_risk_and_compliance_gates_read_the_model_and_the_profiles_in_force() -> None:
    document = PolicyDocument(
        compliance=ComplianceSettings(
            profiles=[
                ComplianceProfile(
                    name="basic",
                    requirements=[
                        Requirement(id="data", title="Data", check="lineage.datasets >= 1"),
                        Requirement(id="use", title="Use", check="model_card.intended_use"),
                    ],
                )
            ]
        )
    )
    policies = evolve_policies(NO_POLICIES, decide_policy(document, NO_POLICIES, Role.ADMIN)[0])
    model, version = _version(datasets=[DatasetRef(name="clicks")])
    assessed = given(
        *model_with_versions(0),
        version_registered(1, datasets=[DatasetRef(name="clicks")]),
        RiskAssessed(
            tier="high", method="direct", rationale="x", assessed_by="r", policy_version=1
        ),
    )
    assert assessed is not None

    def check(text: str, state: ModelState) -> GateCheck:
        return parse_gate(text).check(policies.target(state, state.versions[1]))

    assert check("risk.tier", model) == GateCheck(gate="risk.tier", passed=False, seen=None)
    assert check("risk.tier", assessed) == GateCheck(gate="risk.tier", passed=True, seen="high")
    assert check("compliance.basic", model) == GateCheck(
        gate="compliance.basic", passed=False, seen="1 of 2 met"
    )
    assert check("compliance.other", model) == GateCheck(
        gate="compliance.other", passed=False, seen="no such profile in force"
    )


def test_the_first_scope_matching_the_model_and_naming_the_target_decides() -> None:
    strict = PolicyRule(approvals=3)
    document = PolicyDocument(
        stages={Stage.PRODUCTION: PolicyRule(approvals=1)},
        scopes=[
            Scope(
                name="aliases-only",
                match=ScopeMatch(names=["fraud-*"]),
                aliases={"champion": PolicyRule(approvals=2)},
            ),
            Scope(
                name="fraud",
                match=ScopeMatch(names=["fraud-*"], tags={"team": "risk"}),
                stages={Stage.PRODUCTION: strict},
            ),
            Scope(name="anyone", stages={Stage.PRODUCTION: PolicyRule(approvals=5)}),
        ],
    )
    policies = evolve_policies(NO_POLICIES, decide_policy(document, NO_POLICIES, Role.ADMIN)[0])
    model, _ = _version()
    tagged = replace(model, tags={"team": "risk"})

    def scope_of(state: ModelState) -> str | None:
        rule = policies.rule_for(state, Stage.PRODUCTION, None)
        assert rule is not None
        return rule.scope

    assert scope_of(tagged) == "fraud"  # "aliases-only" matches but names no stage rule
    assert scope_of(model) == "anyone"  # the tag is missing: the next scope that matches
    assert policies.rule_for(model, None, "champion").scope == "aliases-only"  # type: ignore[union-attr]
    assert policies.rule_for(model, Stage.STAGING, None) is None
