"""Governance over HTTP on a real PostgreSQL: the governance document of the issue applied as
written, risk assessed by questionnaire or set directly, scopes choosing the rule by the model's
tier (the first matching scope that names the target wins), a refusal naming the scope and each
failing gate with its value, an unacceptable tier blocking every promotion, compliance reports
with evidence as of any instant, and the dry run of a move."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest

from registrar.contracts.policies import PolicyDocument

pytestmark = pytest.mark.asyncio(loop_scope="session")

GOVERNANCE = """
[stages.Production]
approvals = 1
approver_role = "approver"

[[scopes]]
name = "high-risk"
match = { risk_tier = ["high"] }

[scopes.stages.Production]
approvals = 2
approver_role = "approver"
gates = [
  "evaluations.fairness.demographic_parity_difference <= 0.1",
  "evaluations.explainability",
  "model_card.intended_use",
  "compliance.basic-high-risk",
]

[[scopes]]
name = "credit-team"
match = { names = ["credit-*"] }

[scopes.stages.Production]
approvals = 3

[[compliance.profiles]]
name = "basic-high-risk"
requirements = [
  { id = "data", title = "Training data is recorded", check = "lineage.datasets >= 1" },
  { id = "fairness", title = "Bias was evaluated", check = "evaluations.fairness" },
  { id = "oversight", title = "Intended use is documented", check = "model_card.intended_use" },
]

[[risk.questions]]
id = "domain"
text = "Where is the model used?"
answers = ["marketing", "credit", "hiring", "social-scoring"]

[[risk.rules]]
when = { domain = ["credit", "hiring"] }
tier = "high"

[[risk.rules]]
when = { domain = ["social-scoring"] }
tier = "unacceptable"
"""
FAIR = {"F": {"tp": 35, "fp": 15, "tn": 45, "fn": 5}, "M": {"tp": 38, "fp": 17, "tn": 33, "fn": 12}}


def as_(actor: str) -> dict[str, str]:
    return {"X-Registrar-Actor": actor}


@pytest.fixture(scope="module", autouse=True)
async def governance(app_and_client: Any) -> Any:
    api: httpx.AsyncClient = app_and_client[1]
    document = PolicyDocument.model_validate(tomllib.loads(GOVERNANCE))
    applied = await api.put("/v1/policies", json=document.model_dump(mode="json"))
    assert applied.status_code == 200, applied.text
    yield
    await api.put("/v1/policies", json={})


async def new_model(api: httpx.AsyncClient, prefix: str = "model") -> str:
    name = f"{prefix}-{uuid4().hex[:8]}"
    assert (await api.post("/v1/models", json={"name": name})).status_code == 201
    body = {"source": "s3://m/1", "datasets": [{"name": "applications", "version": "v7"}]}
    assert (await api.post(f"/v1/models/{name}/versions", json=body)).status_code == 201
    return name


async def assess(api: httpx.AsyncClient, name: str, **body: Any) -> httpx.Response:
    return await api.post(f"/v1/models/{name}/risk-assessment", json=body, headers=as_("rose"))


async def request_production(api: httpx.AsyncClient, name: str) -> dict[str, Any]:
    response = await api.post(
        f"/v1/models/{name}/versions/1/transition-requests",
        json={"stage": "Production"},
        headers=as_("rita"),
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_the_questionnaire_maps_answers_to_a_tier_shown_on_the_model(
    api: httpx.AsyncClient,
) -> None:
    name = await new_model(api)

    assessed = await assess(api, name, answers={"domain": "hiring"}, rationale="CV screening")

    assert assessed.status_code == 201, assessed.text
    assert assessed.json() | {"assessed_at": None, "position": None} == {
        "model": name,
        "tier": "high",
        "method": "questionnaire",
        "answers": {"domain": "hiring"},
        "rationale": "CV screening",
        "assessed_by": "rose",
        "assessed_at": None,
        "policy_version": assessed.json()["policy_version"],
        "position": None,
    }
    assert (await api.get(f"/v1/models/{name}")).json()["risk_tier"] == "high"
    listed = await api.get(
        "/v1/models", params={"name": name, "min_position": assessed.json()["position"]}
    )
    assert listed.json()["models"][0]["risk_tier"] == "high"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"answers": {"domain": "gardening"}}, "not one of"),
        ({"answers": {"purpose": "x"}}, "no question 'purpose'"),
        ({"tier": "severe", "rationale": "x"}, "not one of minimal, limited, high, unacceptable"),
        ({"tier": "high"}, "rationale"),
        ({"tier": "high", "rationale": "x", "answers": {"domain": "credit"}}, "not both"),
    ],
)
async def test_a_bad_assessment_is_refused_saying_why(
    api: httpx.AsyncClient, body: dict[str, Any], problem: str
) -> None:
    name = await new_model(api)

    refused = await assess(api, name, **body)

    assert refused.status_code == 422 and problem in refused.text, refused.text
    assert (await api.get(f"/v1/models/{name}/risk-assessment")).json()["tier"] is None


async def test_the_first_scope_that_matches_and_names_the_target_sets_the_rule(
    api: httpx.AsyncClient,
) -> None:
    plain = await new_model(api, "fraud")
    high = await new_model(api, "fraud")
    await assess(api, high, tier="high", rationale="scores people")
    credit_high = await new_model(api, "credit")
    await assess(api, credit_high, tier="high", rationale="credit decisions")
    credit_low = await new_model(api, "credit")

    needs = {
        name: (
            await api.post(
                f"/v1/models/{name}/versions/1/compliance/validate", json={"stage": "Production"}
            )
        ).json()
        for name in (plain, high, credit_high, credit_low)
    }

    assert (needs[plain]["scope"], needs[plain]["approvals_required"]) == (None, 1)
    assert (needs[high]["scope"], needs[high]["approvals_required"]) == ("high-risk", 2)
    # Both scopes match: the one written first wins.
    assert (needs[credit_high]["scope"], needs[credit_high]["approvals_required"]) == (
        "high-risk",
        2,
    )
    assert (needs[credit_low]["scope"], needs[credit_low]["approvals_required"]) == (
        "credit-team",
        3,
    )
    assert [g["gate"] for g in needs[high]["gates"]][-1] == "compliance.basic-high-risk"


async def test_a_refused_request_names_the_scope_and_each_failing_gate_with_its_value(
    api: httpx.AsyncClient,
) -> None:
    name = await new_model(api)
    await assess(api, name, answers={"domain": "credit"})

    request = await request_production(api, name)

    assert request["state"] == "pending"
    missing = "\n".join(request["missing"])
    assert "gate evaluations.explainability under scope high-risk (saw nothing)" in missing
    assert "gate compliance.basic-high-risk under scope high-risk (saw '1 of 3 met')" in missing
    assert "2 more approvals from role approver" in missing


async def test_a_governed_transition_applies_once_the_evidence_is_there(
    api: httpx.AsyncClient,
) -> None:
    name = await new_model(api)
    await assess(api, name, answers={"domain": "credit"})
    request_id = (await request_production(api, name))["request_id"]
    evaluations = f"/v1/models/{name}/versions/1/evaluations"
    await api.post(
        evaluations, json={"kind": "fairness", "sensitive_feature": "sex", "groups": FAIR}
    )
    await api.post(
        evaluations,
        json={"kind": "explainability", "method": "shap", "feature_importance": {"income": 0.4}},
    )
    await api.patch(f"/v1/models/{name}/versions/1/card", json={"intended_use": "Credit limits"})

    for approver in ("ann", "bob"):
        answer = await api.post(
            f"/v1/transition-requests/{request_id}/approve", json={}, headers=as_(approver)
        )

    applied = answer.json()
    assert applied["state"] == "applied", applied
    gates = {g["gate"]: (g["passed"], g["seen"]) for g in applied["gates"]}
    assert gates["compliance.basic-high-risk"] == (True, "3 of 3 met")
    assert all(passed for passed, _ in gates.values())
    version = await api.get(f"/v1/models/{name}/versions/1")
    assert version.json()["stage"] == "Production"
    audit = await api.get(
        "/v1/audit",
        params={"model": name, "action": "StageChanged", "min_position": applied["position"]},
    )
    [row] = audit.json()["events"]
    assert f"under policy v{applied['policy_version']} scope high-risk" in row["summary"]
    assert "compliance.basic-high-risk saw '3 of 3 met'" in row["summary"]
    assert "approved by ann, bob" in row["summary"]


async def test_an_unacceptable_tier_blocks_every_promotion(api: httpx.AsyncClient) -> None:
    name = await new_model(api)
    await assess(api, name, answers={"domain": "social-scoring"})

    staging = await api.post(f"/v1/models/{name}/versions/1/stage", json={"stage": "Staging"})
    alias = await api.put(f"/v1/models/{name}/aliases/champion", json={"version": 1})
    archived = await api.post(f"/v1/models/{name}/versions/1/stage", json={"stage": "Archived"})
    dry_run = await api.post(
        f"/v1/models/{name}/versions/1/compliance/validate", json={"alias": "champion"}
    )

    assert (staging.status_code, alias.status_code) == (409, 409)
    assert "'unacceptable' risk" in staging.json()["error"]["message"]
    assert archived.status_code == 200  # archiving is not a promotion
    assert "blocks every promotion" in dry_run.json()["blocked"]


async def test_a_compliance_report_gives_evidence_and_reads_back_as_of_any_instant(
    api: httpx.AsyncClient,
) -> None:
    name = await new_model(api)
    url = f"/v1/models/{name}/versions/1/compliance"
    before = datetime.now(UTC).isoformat()
    recorded = await api.post(
        f"/v1/models/{name}/versions/1/evaluations",
        json={"kind": "fairness", "sensitive_feature": "sex", "groups": FAIR},
        headers=as_("fiona"),
    )

    now = (await api.get(url, params={"profile": "basic-high-risk"})).json()
    then = (await api.get(url, params={"profile": "basic-high-risk", "as_of": before})).json()
    unknown = await api.get(url, params={"profile": "sox"})

    met = {r["id"]: r["met"] for r in now["requirements"]}
    assert met == {"data": True, "fairness": True, "oversight": False} and now["met"] is False
    fairness = next(r for r in now["requirements"] if r["id"] == "fairness")
    [evidence] = fairness["evidence"]
    assert (evidence["type"], evidence["actor"]) == ("EvaluationRecorded", "fiona")
    assert evidence["position"] == recorded.json()["position"]
    assert {r["id"]: r["met"] for r in then["requirements"]}["fairness"] is False
    assert unknown.status_code == 404 and "basic-high-risk" in unknown.text


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (
            {"stages": {"Production": {"gates": ["compliance.nope"]}}},
            "no compliance profile 'nope'",
        ),
        ({"scopes": [{"name": "s", "match": {"risk_tier": ["severe"]}}]}, "are not tiers"),
        (
            {
                "compliance": {
                    "profiles": [
                        {
                            "name": "p",
                            "requirements": [{"id": "x", "title": "x", "check": "compliance.p"}],
                        }
                    ]
                }
            },
            "cannot check compliance itself",
        ),
        ({"scopes": [{"name": "s"}, {"name": "s"}]}, "scope names used twice"),
        ({"risk": {"rules": [{"when": {"q": ["a"]}, "tier": "high"}]}}, "no question 'q'"),
    ],
)
async def test_a_governance_document_with_a_mistake_is_refused_naming_it(
    api: httpx.AsyncClient, document: dict[str, Any], problem: str
) -> None:
    refused = await api.put("/v1/policies", json=document)

    assert refused.status_code == 422 and problem in refused.text, refused.text
