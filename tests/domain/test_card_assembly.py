"""The model card's assembly, pure: every section in order whatever is recorded, each saying
"Not recorded." when nothing is; the owner and license from tags (the version's first); the
explainability section's ten most important features; what a registration recorded (type,
framework) shown with the version."""

from __future__ import annotations

from typing import Any

from scenario import AT, NAME, given, model_registered, version_registered

from registrar.contracts.card_document import CARD_SECTIONS, NOT_RECORDED, ModelCardDocument
from registrar.contracts.events import EvaluationRecorded, ModelCardUpdated
from registrar.domain.model_card import TOP_FEATURES, card_document
from registrar.domain.policies import NO_POLICIES
from registrar.domain.state import ModelState


def card_of(*events: Any) -> dict[str, Any]:
    model = given(*events)
    assert isinstance(model, ModelState)
    return card_document(model, model.versions[1], policies=NO_POLICIES, envelopes=[], as_of=AT)


def details(document: dict[str, Any]) -> dict[str, Any]:
    return {f["label"]: f["value"] for f in document["sections"][0]["blocks"][0]["facts"]}


def test_a_bare_version_has_every_section_and_all_but_its_details_say_not_recorded() -> None:
    document = card_of(model_registered(), version_registered(1))

    ModelCardDocument.model_validate(document)
    assert [(s["id"], s["title"]) for s in document["sections"]] == list(CARD_SECTIONS)
    details_section, *others = document["sections"]
    assert details_section["note"] == "" and details_section["blocks"]
    assert all(s["note"] == NOT_RECORDED and s["blocks"] == [] for s in others)
    assert details(document)["Owner"] is None and details(document)["Type"] is None


def test_details_show_type_framework_and_the_owner_and_license_tags_the_version_first() -> None:
    document = card_of(
        model_registered(tags={"owner": "team-model", "license": "MIT"}),
        version_registered(1, model_type="cnn", framework="torch 2.4", tags={"owner": "ann"}),
    )

    shown = details(document)
    assert (shown["Type"], shown["Framework"]) == ("cnn", "torch 2.4")
    assert (shown["Owner"], shown["License"]) == ("ann", "MIT")
    assert shown["Name"] == NAME and shown["Created"] == "2024-05-01T12:00:00Z"


def test_explainability_lists_the_most_important_features_by_magnitude() -> None:
    importance = {f"f{i}": (-1) ** i * float(i) for i in range(1, 15)}
    explained = EvaluationRecorded(
        version=1,
        evaluation_id="ev-1",
        kind="explainability",
        method="shap",
        feature_importance=importance,
    )
    document = card_of(model_registered(), version_registered(1), explained)

    section = next(s for s in document["sections"] if s["id"] == "explainability")
    table = section["blocks"][1]
    assert [row[0] for row in table["rows"]] == [f"f{i}" for i in range(14, 14 - TOP_FEATURES, -1)]
    assert table["caption"] == f"Top {TOP_FEATURES} of 14 features by importance"


def test_card_fields_fill_their_sections() -> None:
    card = {
        "intended_use": "Triage",
        "limitations": "Not for minors",
        "ethical_considerations": "Reviewed",
        "training_data_summary": "2023 claims",
        "evaluation_summary": "Q4 holdout",
    }
    document = card_of(
        model_registered(), version_registered(1), ModelCardUpdated(version=1, card=card)
    )

    texts = {
        s["id"]: [b["text"] for b in s["blocks"] if b["kind"] == "text"]
        for s in document["sections"]
    }
    assert texts["intended_use"] == ["Triage"]
    assert texts["caveats"] == ["Not for minors"]
    assert texts["ethical_considerations"] == ["Reviewed"]
    assert texts["training_data"] == ["2023 claims"]
    assert texts["evaluation_data"] == ["Q4 holdout"]
