"""Evaluations over HTTP on a real PostgreSQL: recorded as events on the version's stream, fairness
figures derived from per-group counts, listed newest first, linked by mitigations, on the audit
trail and in lineage, and read by promotion gates (`evaluations.<kind>` and
`evaluations.<kind>.<metric> <op> <number>`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Women are selected at 0.4, men at 0.6: a demographic parity difference of 0.2.
BIASED = {
    "F": {"tp": 30, "fp": 10, "tn": 50, "fn": 10},
    "M": {"tp": 40, "fp": 20, "tn": 30, "fn": 10},
}
# After threshold optimisation: 0.5 and 0.55.
MITIGATED = {
    "F": {"tp": 35, "fp": 15, "tn": 45, "fn": 5},
    "M": {"tp": 38, "fp": 17, "tn": 33, "fn": 12},
}
POLICY = {
    "stages": {
        "Production": {
            "approvals": 1,
            "approver_role": "approver",
            "gates": [
                "evaluations.fairness.demographic_parity_difference <= 0.1",
                "evaluations.explainability",
            ],
        }
    }
}


def as_(actor: str) -> dict[str, str]:
    return {"X-Registrar-Actor": actor}


async def new_version(api: httpx.AsyncClient) -> tuple[str, str]:
    name = f"credit-{uuid4().hex[:8]}"
    assert (await api.post("/v1/models", json={"name": name})).status_code == 201
    body = {
        "source": "s3://models/credit/1",
        "datasets": [{"name": "applications", "version": "v7"}],
    }
    assert (await api.post(f"/v1/models/{name}/versions", json=body)).status_code == 201
    return name, f"/v1/models/{name}/versions/1/evaluations"


def fairness(groups: dict[str, dict[str, int]], **more: Any) -> dict[str, Any]:
    return {
        "kind": "fairness",
        "sensitive_feature": "sex",
        "groups": groups,
        "dataset": {"name": "holdout", "version": "2026-11"},
        "tools": {"fairlearn": "0.13"},
        **more,
    }


async def test_a_fairness_evaluation_is_recorded_with_its_derived_figures(
    api: httpx.AsyncClient,
) -> None:
    _, url = await new_version(api)

    recorded = await api.post(url, json=fairness(BIASED), headers=as_("fiona"))

    assert recorded.status_code == 201, recorded.text
    evaluation = recorded.json()
    assert evaluation["recorded_by"] == "fiona" and evaluation["kind"] == "fairness"
    women = evaluation["groups"]["F"]
    assert (women["count"], women["selection_rate"]) == (100, 0.4)
    assert women["true_positive_rate"] == 0.75 and women["false_positive_rate"] == 10 / 60
    summary = evaluation["fairness"]
    assert summary["demographic_parity_difference"] == pytest.approx(0.2)
    assert summary["demographic_parity_ratio"] == pytest.approx(0.4 / 0.6)
    # TPR spread 0.05, FPR spread 0.4 - 1/6: the larger one.
    assert summary["equalized_odds_difference"] == pytest.approx(0.4 - 10 / 60)
    assert summary["equalized_odds_ratio"] == pytest.approx(min(0.75 / 0.8, (10 / 60) / 0.4))
    assert summary["four_fifths_rule"] is False
    read = await api.get(f"{url}/{evaluation['evaluation_id']}")
    assert read.json() == {k: v for k, v in evaluation.items() if k != "position"}


async def test_evaluations_are_listed_newest_first_and_retries_record_once(
    api: httpx.AsyncClient,
) -> None:
    _, url = await new_version(api)
    key = {"Idempotency-Key": str(uuid4())}
    first = await api.post(url, json={"kind": "performance", "metrics": {"auc": 0.9}}, headers=key)
    again = await api.post(url, json={"kind": "performance", "metrics": {"auc": 0.9}}, headers=key)
    later = await api.post(url, json={"kind": "robustness", "metrics": {"auc_under_noise": 0.8}})

    listed = (await api.get(url)).json()["evaluations"]

    assert first.json()["evaluation_id"] == again.json()["evaluation_id"]
    assert [e["evaluation_id"] for e in listed] == [
        later.json()["evaluation_id"],
        first.json()["evaluation_id"],
    ]


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"kind": "Fairness!"}, "custom kind"),
        ({"kind": "fairness", "groups": BIASED}, "sensitive_feature"),
        ({"kind": "fairness", "sensitive_feature": "sex", "groups": {"F": {"tp": 1}}}, "tp, fp"),
        (fairness({"F": {"tp": 1.5, "fp": 0, "tn": 0, "fn": 0}}), "whole numbers"),
        (fairness({"F": {"tp": 0, "fp": 0, "tn": 0, "fn": 0}}), "no members"),
        ({"kind": "explainability", "feature_importance": {"age": 0.2}}, "method"),
        ({"kind": "mitigation", "technique": "reweighing"}, "before and after"),
        ({"kind": "performance", "metrics": {"auc": "high"}}, "metrics"),
        (fairness(BIASED, dataset={"name": "d", "digest": "md5:1"}), "sha256"),
        ({"kind": "performance", "report": {"uri": "s3://r", "digest": "sha256:zz"}}, "sha256"),
    ],
)
async def test_a_malformed_evaluation_is_refused_saying_why_and_records_nothing(
    api: httpx.AsyncClient, body: dict[str, Any], mentions: str
) -> None:
    _, url = await new_version(api)

    refused = await api.post(url, json=body)

    assert refused.status_code == 422, refused.text
    assert mentions in refused.text
    assert (await api.get(url)).json()["evaluations"] == []


async def test_a_mitigation_links_the_fairness_evaluations_before_and_after(
    api: httpx.AsyncClient,
) -> None:
    _, url = await new_version(api)
    before = (await api.post(url, json=fairness(BIASED))).json()["evaluation_id"]
    after = (await api.post(url, json=fairness(MITIGATED))).json()["evaluation_id"]
    performance = (await api.post(url, json={"kind": "performance"})).json()["evaluation_id"]

    linked = await api.post(
        url,
        json={
            "kind": "mitigation",
            "technique": "threshold optimisation",
            "before": [before],
            "after": [after],
            "tools": {"fairlearn": "0.13"},
        },
    )
    wrong = await api.post(
        url,
        json={
            "kind": "mitigation",
            "technique": "reweighing",
            "before": [performance],
            "after": [after],
        },
    )

    assert linked.status_code == 201
    assert (linked.json()["before"], linked.json()["after"]) == ([before], [after])
    assert wrong.status_code == 422 and "not a fairness evaluation" in wrong.text


async def test_an_evaluation_of_an_unknown_or_deleted_version_is_404(
    api: httpx.AsyncClient,
) -> None:
    name, url = await new_version(api)

    unknown = await api.post(url.replace("/versions/1/", "/versions/9/"), json={"kind": "x"})
    missing = await api.get(f"{url}/no-such-evaluation")
    await api.delete(f"/v1/models/{name}/versions/1")
    deleted = await api.post(url, json={"kind": "performance"})

    assert (unknown.status_code, missing.status_code, deleted.status_code) == (404, 404, 404)


async def test_an_evaluation_is_on_the_audit_trail_and_joins_lineage(
    api: httpx.AsyncClient,
) -> None:
    name, url = await new_version(api)
    recorded = (await api.post(url, json=fairness(BIASED), headers=as_("fiona"))).json()
    position = recorded["position"]

    audit = await api.get(
        "/v1/audit",
        params={"model": name, "action": "EvaluationRecorded", "min_position": position},
    )
    lineage = await api.get(
        "/v1/lineage",
        params={"node": f"version:{name}/1", "depth": 1, "min_position": position},
    )
    impact = await api.get(
        "/v1/lineage/impact", params={"node": "dataset:holdout@2026-11", "min_position": position}
    )

    [row] = audit.json()["events"]
    assert row["actor"] == "fiona" and "demographic_parity_difference=0.2" in row["summary"]
    edges = {(e["from"], e["to"], e["kind"]) for e in lineage.json()["edges"]}
    assert (f"version:{name}/1", "dataset:holdout@2026-11", "evaluated_on") in edges
    # Evaluated on a dataset is not built from it: impact analysis does not follow that edge.
    assert f"version:{name}/1" not in [v["id"] for v in impact.json()["versions"]]


async def test_gates_read_the_newest_evaluation_of_a_kind(api: httpx.AsyncClient) -> None:
    applied = await api.put("/v1/policies", json=POLICY, headers=as_("ada"))
    assert applied.status_code == 200, applied.text
    try:
        name, url = await new_version(api)
        await api.post(url, json=fairness(BIASED))
        request = await api.post(
            f"/v1/models/{name}/versions/1/transition-requests",
            json={"stage": "Production"},
            headers=as_("rita"),
        )
        assert request.status_code == 201, request.text
        request_id = request.json()["request_id"]

        refused = await api.post(
            f"/v1/transition-requests/{request_id}/approve", json={}, headers=as_("ann")
        )
        waiting = refused.json()
        seen = {g["gate"]: (g["passed"], g["seen"]) for g in waiting["gates"]}
        assert waiting["state"] == "pending"
        dp_gate = "evaluations.fairness.demographic_parity_difference <= 0.1"
        assert seen[dp_gate][0] is False and seen[dp_gate][1] == pytest.approx(0.2)
        assert seen["evaluations.explainability"] == (False, None)
        assert any(dp_gate in missing for missing in waiting["missing"])

        await api.post(url, json=fairness(MITIGATED))
        explained = await api.post(
            url,
            json={
                "kind": "explainability",
                "method": "shap",
                "feature_importance": {"income": 0.41, "age": 0.22},
            },
        )
        # New evidence makes earlier approvals stale: the request is approved again.
        approved = await api.post(
            f"/v1/transition-requests/{request_id}/approve", json={}, headers=as_("ann")
        )
        assert approved.json()["state"] == "applied", approved.text
        gates = {g["gate"]: g["seen"] for g in approved.json()["gates"]}
        assert gates[dp_gate] == pytest.approx(0.05)
        assert gates["evaluations.explainability"] == explained.json()["evaluation_id"]
        version = await api.get(f"/v1/models/{name}/versions/1")
        assert version.json()["stage"] == "Production"
    finally:
        await api.put("/v1/policies", json={}, headers=as_("ada"))


@pytest.mark.parametrize(
    ("gate", "problem"),
    [
        ("evaluations.fairness >= 1", "write it alone"),
        ("evaluations.fairness.demographic_parity_difference", "compare"),
        ("evaluations.Fairness", "evaluations.<kind>"),
    ],
)
async def test_a_policy_with_a_malformed_evaluation_gate_is_refused(
    api: httpx.AsyncClient, gate: str, problem: str
) -> None:
    bad = {"stages": {"Production": {"gates": [gate]}}}

    refused = await api.put("/v1/policies", json=bad, headers=as_("ada"))

    assert refused.status_code == 422 and problem in refused.text


async def test_evaluations_and_the_risk_tier_read_back_as_of_an_instant(
    api: httpx.AsyncClient,
) -> None:
    name, url = await new_version(api)
    first = (await api.post(url, json={"kind": "performance", "metrics": {"auc": 0.8}})).json()
    between = datetime.now(UTC).isoformat()
    await api.post(url, json={"kind": "performance", "metrics": {"auc": 0.9}})
    await api.put("/v1/policies", json={})  # the default tiers
    await api.post(
        f"/v1/models/{name}/risk-assessment", json={"tier": "high", "rationale": "credit"}
    )

    then = (await api.get(url, params={"as_of": between})).json()["evaluations"]
    risk_then = await api.get(f"/v1/models/{name}/risk-assessment", params={"as_of": between})
    risk_now = await api.get(f"/v1/models/{name}/risk-assessment")

    assert [e["evaluation_id"] for e in then] == [first["evaluation_id"]]
    assert (risk_then.json()["tier"], risk_now.json()["tier"]) == (None, "high")
