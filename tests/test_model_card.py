"""The model card as a document, over HTTP on a real PostgreSQL: a version documented, evaluated
(performance, fairness, explainability), risk-assessed, checked against a compliance profile and
promoted to Production with an approval shows all of it, section by section, as JSON, Markdown
and a standalone HTML page; free text is escaped; as of an earlier instant the card is the one of
then. (The console script and the client: tests/test_model_card_cli.py.)"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest

from registrar.api.card_rendering import rendered_card
from registrar.contracts.card_document import CARD_SECTIONS, NOT_RECORDED, ModelCardDocument

pytestmark = pytest.mark.asyncio(loop_scope="session")

POLICY = {
    "stages": {"Production": {"approvals": 1, "approver_role": "approver"}},
    "compliance": {
        "profiles": [
            {
                "name": "documented",
                "requirements": [
                    {"id": "data", "title": "Training data is known", "check": "lineage.datasets"},
                    {"id": "bias", "title": "Bias was evaluated", "check": "evaluations.fairness"},
                    {"id": "use", "title": "Use is documented", "check": "model_card.intended_use"},
                ],
            }
        ]
    },
}
FAIR = {"F": {"tp": 35, "fp": 15, "tn": 45, "fn": 5}, "M": {"tp": 38, "fp": 17, "tn": 33, "fn": 12}}
"""F: selection rate 0.5, TPR 0.875, FPR 0.25; M: 0.55, 0.76, 0.34."""
IMPORTANCE = {f"feature_{i:02d}": round(0.01 * (i + 1), 2) for i in range(12)}
"""Twelve features: feature_11 matters most, feature_00 and feature_01 miss the top ten."""
INTENDED_USE = "Pre-screening of credit applications <script>alert('card')</script> by analysts."
TITLES = [title for _, title in CARD_SECTIONS]


def as_(actor: str) -> dict[str, str]:
    return {"X-Registrar-Actor": actor}


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture(scope="module")
async def documented(app_and_client: Any) -> dict[str, Any]:
    """A version with everything a card shows, and the instant before its first evaluation."""
    api: httpx.AsyncClient = app_and_client[1]
    policy = await ok(await api.put("/v1/policies", json=POLICY))
    name = f"credit-{uuid4().hex[:8]}"
    tags = {"owner": "team-credit", "license": "Apache-2.0"}
    await ok(await api.post("/v1/models", json={"name": name, "tags": tags}), 201)
    version = {
        "source": "s3://models/credit/1",
        "model_type": "gradient-boosted trees",
        "framework": "xgboost 2.1",
        "metrics": {"auc": 0.91, "accuracy": 0.88},
        "datasets": [{"name": "applications", "version": "v7", "uri": "s3://data/apps/v7"}],
    }
    await ok(await api.post(f"/v1/models/{name}/versions", json=version, headers=as_("dana")), 201)
    card = {
        "intended_use": INTENDED_USE,
        "limitations": "Not validated for applicants under 21.",
        "ethical_considerations": "Sex is a protected attribute; selection rates are monitored.",
        "training_data_summary": "Applications from 2019 to 2023.",
        "evaluation_summary": "Held-out applications from the last quarter.",
    }
    carded = await ok(await api.patch(f"/v1/models/{name}/versions/1/card", json=card))
    holdout = {"name": "holdout", "version": "2024-q4"}
    evaluations = [
        {"kind": "performance", "dataset": holdout, "metrics": {"auc": 0.905, "f1": 0.77}},
        {"kind": "fairness", "dataset": holdout, "sensitive_feature": "sex", "groups": FAIR},
        {"kind": "explainability", "method": "shap", "feature_importance": IMPORTANCE},
    ]
    for evaluation in evaluations:
        path = f"/v1/models/{name}/versions/1/evaluations"
        await ok(await api.post(path, json=evaluation, headers=as_("eve")), 201)
    risk = {"tier": "high", "rationale": "Decides on credit"}
    assessed = await api.post(f"/v1/models/{name}/risk-assessment", json=risk, headers=as_("rose"))
    await ok(assessed, 201)
    requested = await ok(
        await api.post(
            f"/v1/models/{name}/versions/1/transition-requests",
            json={"stage": "Production"},
            headers=as_("rita"),
        ),
        201,
    )
    approve = f"/v1/transition-requests/{requested['request_id']}/approve"
    approved = await ok(await api.post(approve, json={}, headers=as_("alex")))
    assert approved["state"] == "applied", approved
    return {
        "name": name,
        "policy_version": policy["version"],
        "before_evaluations": carded["updated_at"],
    }


async def card(api: httpx.AsyncClient, name: str, card_format: str, **query: str) -> httpx.Response:
    response = await api.get(
        f"/v1/models/{name}/versions/1/card", params={"format": card_format, **query}
    )
    assert response.status_code == 200, response.text
    return response


def section(document: dict[str, Any], section_id: str) -> dict[str, Any]:
    return next(s for s in document["sections"] if s["id"] == section_id)


def facts(block: dict[str, Any]) -> dict[str, Any]:
    return {fact["label"]: fact["value"] for fact in block["facts"]}


def in_order(text: str, parts: list[str]) -> bool:
    places = [text.find(part) for part in parts]
    return -1 not in places and places == sorted(places)


async def test_the_json_card_has_every_section_in_order_with_the_versions_facts(
    api: httpx.AsyncClient, documented: dict[str, Any]
) -> None:
    document = (await card(api, documented["name"], "json")).json()

    ModelCardDocument.model_validate(document)
    assert [(s["id"], s["title"]) for s in document["sections"]] == list(CARD_SECTIONS)
    details = facts(section(document, "model_details")["blocks"][0])
    assert details | {"Created": None} == details | {
        "Name": documented["name"],
        "Version": 1,
        "Type": "gradient-boosted trees",
        "Framework": "xgboost 2.1",
        "Owner": "team-credit",
        "License": "Apache-2.0",
        "Created": None,
        "Created by": "dana",
        "Stage": "Production",
    }
    assert facts(section(document, "risk")["blocks"][0])["Tier"] == "high"
    fairness = next(
        b for b in section(document, "quantitative_analyses")["blocks"] if "Group" in b["columns"]
    )
    assert fairness["rows"][0] == ["F", 100, 0.5, 0.875, 0.25]
    compliance = section(document, "compliance")["blocks"]
    assert facts(compliance[0]) == {"documented": True}
    approvals = section(document, "approvals")["blocks"][0]
    row = dict(zip(approvals["columns"], approvals["rows"][0], strict=True))
    assert row | {"Applied at": None, "Approved at": None} == {
        "Move": "stage Production",
        "Applied at": None,
        "Requested by": "rita",
        "Approved by": "alex",
        "Approved at": None,
        "Policy version": documented["policy_version"],
        "Scope": None,
        "Gates": None,
    }
    assert document["policy_version"] == documented["policy_version"]


async def test_the_markdown_and_html_cards_show_every_section_and_the_key_values(
    api: httpx.AsyncClient, documented: dict[str, Any]
) -> None:
    name = documented["name"]
    markdown = await card(api, name, "markdown")
    html = await card(api, name, "html")

    assert markdown.headers["content-type"] == "text/markdown; charset=utf-8"
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert in_order(markdown.text, [f"\n## {title}\n" for title in TITLES])
    assert in_order(html.text, [f">{title}</h2>" for title in TITLES])
    approver_row = next(line for line in markdown.text.splitlines() if "| alex |" in line)
    assert f"| {documented['policy_version']} |" in approver_row
    for text in (markdown.text, html.text):
        for shown in ("high", "0.875", "feature_11", "alex", "xgboost 2.1", "team-credit"):
            assert shown in text, shown
        assert "feature_00" not in text and "feature_01" not in text  # only the top ten
        assert "Not validated for applicants under 21." in text


async def test_html_is_a_standalone_page_that_escapes_what_the_card_holds(
    api: httpx.AsyncClient, documented: dict[str, Any]
) -> None:
    page = (await card(api, documented["name"], "html")).text

    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert f"<title>Model card: {documented['name']} version 1</title>" in page
    assert "<style>" in page and "<table>" in page
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#39;card&#39;)&lt;/script&gt;" in page
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!#)""", page)  # no external asset


async def test_markdown_does_not_pass_raw_html_through(
    api: httpx.AsyncClient, documented: dict[str, Any]
) -> None:
    text = (await card(api, documented["name"], "markdown")).text

    assert not re.search(r"(?<!\\)<[A-Za-z/!?]", text)  # no < that could open HTML
    assert "Pre-screening of credit applications \\<script>alert('card')\\</script>" in text


async def test_the_renderings_are_made_from_the_json_document(
    api: httpx.AsyncClient, documented: dict[str, Any]
) -> None:
    at = datetime.now(UTC).isoformat()
    name = documented["name"]
    document = (await card(api, name, "json", as_of=at)).json()
    document["as_of"] = datetime.fromisoformat(document["as_of"])

    for card_format in ("markdown", "html"):
        answered = (await card(api, name, card_format, as_of=at)).text
        assert rendered_card(document, card_format) == answered  # type: ignore[arg-type]


async def test_as_of_before_the_evaluations_the_card_shows_none(
    api: httpx.AsyncClient, documented: dict[str, Any]
) -> None:
    name, then = documented["name"], documented["before_evaluations"]

    document = (await card(api, name, "json", as_of=then)).json()
    markdown = (await card(api, name, "markdown", as_of=then)).text

    for empty in ("factors", "quantitative_analyses", "explainability", "risk", "approvals"):
        assert section(document, empty) | {"blocks": [], "note": NOT_RECORDED} == section(
            document, empty
        ), empty
    assert facts(section(document, "model_details")["blocks"][0])["Stage"] == "None"
    assert facts(section(document, "compliance")["blocks"][0]) == {"documented": False}
    assert section(document, "intended_use")["blocks"][0]["text"] == INTENDED_USE
    assert "0.875" not in markdown and "feature_11" not in markdown
    assert "\n## Quantitative Analyses\n\nNot recorded.\n" in markdown


async def test_a_card_of_a_version_that_is_not_there_is_not_found(
    api: httpx.AsyncClient, documented: dict[str, Any]
) -> None:
    name = documented["name"]
    missing = await api.get(f"/v1/models/{name}/versions/9/card")
    before = await api.get(
        f"/v1/models/{name}/versions/1/card", params={"as_of": "2000-01-01T00:00:00Z"}
    )
    bad_format = await api.get(f"/v1/models/{name}/versions/1/card", params={"format": "pdf"})

    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert before.status_code == 404
    assert bad_format.status_code == 422


async def test_a_version_registered_with_a_type_and_framework_shows_them_when_listed(
    api: httpx.AsyncClient, documented: dict[str, Any]
) -> None:
    name = documented["name"]
    read = await ok(await api.get(f"/v1/models/{name}/versions/1"))
    listed = await ok(await api.get(f"/v1/models/{name}/versions"))

    assert (read["model_type"], read["framework"]) == ("gradient-boosted trees", "xgboost 2.1")
    assert listed["versions"][0] == read
