"""A version's model card as one structured document, pure: every section (Model Details to
Approvals, registrar.contracts.card_document.CARD_SECTIONS) assembled from the model's state, the
policies in force and the model's stream, all as of one instant. The JSON answer is this document;
the Markdown and HTML renderings are made from it, so no format decides what a section holds.

The owner and the license are the version's `owner` and `license` tags, else the model's: tags
fold with the stream, so a card as of any instant shows the owner of then (ownership grants, kept
in the access streams, say who may change the model, not who answers for it)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from registrar.contracts.card_document import CARD_SECTIONS, NOT_RECORDED
from registrar.contracts.envelope import Envelope
from registrar.contracts.values import DatasetRef
from registrar.domain.compliance import compliance_report
from registrar.domain.policies import PolicySet
from registrar.domain.state import ModelState, RecordedEvaluation, VersionState

TOP_FEATURES = 10
"""The explainability section lists at most this many features, the most important first."""
OWNER_TAG = "owner"
LICENSE_TAG = "license"

Block = dict[str, Any]


def card_document(
    model: ModelState,
    version: VersionState,
    *,
    policies: PolicySet,
    envelopes: Sequence[Envelope],
    as_of: datetime,
) -> dict[str, Any]:
    """The card of `version` of `model` as they stood at `as_of`: `policies` were in force then,
    and `envelopes` is the model's stream up to then (who registered the version, and the
    evidence of compliance)."""
    card = version.card
    evaluations = version.evaluations
    blocks: dict[str, list[Block]] = {
        "model_details": [_facts(_details(model, version, envelopes))],
        "intended_use": _text(card.get("intended_use")),
        "factors": _factors(evaluations),
        "metrics": _metrics_table(version.metrics),
        "evaluation_data": [
            *_text(card.get("evaluation_summary"), "Summary"),
            *_evaluation_data(evaluations),
        ],
        "training_data": [
            *_text(card.get("training_data_summary"), "Summary"),
            *_datasets(version.datasets, "Datasets the version was trained on"),
        ],
        "quantitative_analyses": _analyses(evaluations),
        "explainability": _explanations(evaluations),
        "ethical_considerations": _text(card.get("ethical_considerations")),
        "caveats": _text(card.get("limitations")),
        "risk": _risk(model),
        "compliance": _compliance(model, version, policies, envelopes),
        "approvals": _approvals(model, version.version),
    }
    return {
        "model": model.name,
        "version": version.version,
        "title": f"Model card: {model.name} version {version.version}",
        "as_of": as_of,
        "policy_version": policies.version,
        "sections": [
            {
                "id": section_id,
                "title": title,
                "blocks": blocks[section_id],
                "note": "" if blocks[section_id] else NOT_RECORDED,
            }
            for section_id, title in CARD_SECTIONS
        ],
    }


# Blocks ------------------------------------------------------------------------------------------


def _facts(facts: Iterable[tuple[str, Any]], caption: str = "") -> Block:
    return {
        "kind": "facts",
        "caption": caption,
        "facts": [{"label": label, "value": value} for label, value in facts],
    }


def _table(caption: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Block:
    return {"kind": "table", "caption": caption, "columns": list(columns), "rows": list(rows)}


def _text(text: str | None, caption: str = "") -> list[Block]:
    """A text block of `text`, none when it is not filled in."""
    return [{"kind": "text", "caption": caption, "text": text}] if text else []


def _time(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC, as the API's JSON writes instants."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _or_none(text: str) -> str | None:
    return text or None


def _dataset_name(dataset: DatasetRef | None) -> str | None:
    if dataset is None:
        return None
    return f"{dataset.name}@{dataset.version}" if dataset.version else dataset.name


def _about(recorded: RecordedEvaluation) -> str:
    """How a caption names an evaluation: its kind, id, dataset and when it was recorded."""
    evaluation = recorded.evaluation
    on = f" on {_dataset_name(evaluation.dataset)}" if evaluation.dataset else ""
    return (
        f"{evaluation.kind.capitalize()} evaluation {evaluation.evaluation_id}{on},"
        f" recorded {_time(recorded.recorded_at)}"
    )


# Sections ----------------------------------------------------------------------------------------


def _details(
    model: ModelState, version: VersionState, envelopes: Sequence[Envelope]
) -> list[tuple[str, Any]]:
    def tag(key: str) -> str | None:
        return version.tags.get(key) or model.tags.get(key) or None

    registered_by = next(
        (
            e.actor
            for e in envelopes
            if e.type == "VersionRegistered" and e.payload.get("version") == version.version
        ),
        None,
    )
    parents = ", ".join(f"{p.model} version {p.version} ({p.relation})" for p in version.parents)
    facts: list[tuple[str, Any]] = [
        ("Name", model.name),
        ("Version", version.version),
        ("Type", _or_none(version.model_type)),
        ("Framework", _or_none(version.framework)),
        ("Owner", tag(OWNER_TAG)),
        ("License", tag(LICENSE_TAG)),
        ("Description", _or_none(version.description or model.description)),
        ("Created", _time(version.created_at)),
        ("Created by", registered_by),
        ("Source", _or_none(version.source)),
        ("Training run", _or_none(version.run_id)),
        ("Digest", _or_none(version.digest)),
        ("Derived from", _or_none(parents)),
        ("Stage", version.stage.value),
        ("Aliases", _or_none(", ".join(model.aliases_of(version.version)))),
    ]
    if version.manifest_digest:
        facts += [
            ("Manifest digest", version.manifest_digest),
            ("Files", version.artifact_files),
            ("Bytes", version.artifact_bytes),
            ("Sealed", _time(version.sealed_at)),
        ]
    return facts


def _of_kind(evaluations: Iterable[RecordedEvaluation], *kinds: str) -> list[RecordedEvaluation]:
    return [e for e in evaluations if e.kind in kinds]


def _factors(evaluations: Sequence[RecordedEvaluation]) -> list[Block]:
    fairness = _of_kind(evaluations, "fairness")
    if not fairness:
        return []
    rows = [
        [
            e.evaluation.sensitive_feature,
            ", ".join(e.evaluation.groups),
            e.evaluation_id,
            _dataset_name(e.evaluation.dataset),
        ]
        for e in fairness
    ]
    columns = ("Sensitive feature", "Groups", "Evaluation", "Dataset")
    return [_table("Sensitive features evaluated for fairness", columns, rows)]


def _metrics_table(metrics: dict[str, float], caption: str = "") -> list[Block]:
    if not metrics:
        return []
    return [_table(caption, ("Metric", "Value"), ([k, metrics[k]] for k in sorted(metrics)))]


def _datasets(datasets: Sequence[DatasetRef], caption: str) -> list[Block]:
    if not datasets:
        return []
    rows = ([d.name, _or_none(d.version), _or_none(d.uri), _or_none(d.digest)] for d in datasets)
    return [_table(caption, ("Dataset", "Version", "URI", "Digest"), rows)]


def _evaluation_data(evaluations: Sequence[RecordedEvaluation]) -> list[Block]:
    """Each dataset the evaluations ran on, once, with the evaluations that used it."""
    used: dict[DatasetRef, list[str]] = {}
    for recorded in evaluations:
        if recorded.evaluation.dataset is not None:
            used.setdefault(recorded.evaluation.dataset, []).append(
                f"{recorded.kind} {recorded.evaluation_id}"
            )
    if not used:
        return []
    rows = (
        [d.name, _or_none(d.version), _or_none(d.uri), _or_none(d.digest), ", ".join(by)]
        for d, by in used.items()
    )
    columns = ("Dataset", "Version", "URI", "Digest", "Evaluations")
    return [_table("Datasets the evaluations ran on", columns, rows)]


def _fairness(recorded: RecordedEvaluation) -> list[Block]:
    evaluation = recorded.evaluation
    rows = (
        [
            group,
            int(figures.get("count", 0)),
            figures.get("selection_rate"),
            figures.get("true_positive_rate"),
            figures.get("false_positive_rate"),
        ]
        for group, figures in evaluation.groups.items()
    )
    columns = ("Group", "Count", "Selection rate", "True positive rate", "False positive rate")
    caption = f"{_about(recorded)}: by {evaluation.sensitive_feature}"
    blocks = [_table(caption, columns, rows)]
    summary = evaluation.fairness
    if summary is not None:
        disparities = [
            ("Demographic parity difference", summary.demographic_parity_difference),
            ("Demographic parity ratio", summary.demographic_parity_ratio),
            ("Equalized odds difference", summary.equalized_odds_difference),
            ("Equalized odds ratio", summary.equalized_odds_ratio),
            ("Four-fifths rule met", summary.four_fifths_rule),
        ]
        blocks.append(_facts(disparities, f"Disparities across {summary.sensitive_feature}"))
    blocks += _metrics_table(evaluation.metrics, "Other metrics of this evaluation")
    return blocks


def _mitigation(recorded: RecordedEvaluation) -> list[Block]:
    evaluation = recorded.evaluation
    facts = [
        ("Technique", evaluation.technique),
        ("Fairness evaluations before", ", ".join(evaluation.before)),
        ("Fairness evaluations after", ", ".join(evaluation.after)),
    ]
    return [_facts(facts, _about(recorded)), *_metrics_table(evaluation.metrics)]


def _analyses(evaluations: Sequence[RecordedEvaluation]) -> list[Block]:
    """Every evaluation's figures but explainability's (a section of its own), oldest first."""
    blocks: list[Block] = []
    for recorded in evaluations:
        evaluation = recorded.evaluation
        if recorded.kind == "explainability":
            continue
        if recorded.kind == "fairness":
            blocks += _fairness(recorded)
        elif recorded.kind == "mitigation":
            blocks += _mitigation(recorded)
        elif evaluation.metrics:
            blocks += _metrics_table(evaluation.metrics, _about(recorded))
        if recorded.kind not in ("fairness", "mitigation") and evaluation.groups:
            names = sorted({name for figures in evaluation.groups.values() for name in figures})
            rows = ([g, *(f.get(n) for n in names)] for g, f in evaluation.groups.items())
            blocks.append(_table(f"{_about(recorded)}: by group", ("Group", *names), rows))
    return blocks


def _explanations(evaluations: Sequence[RecordedEvaluation]) -> list[Block]:
    blocks: list[Block] = []
    for recorded in _of_kind(evaluations, "explainability"):
        evaluation = recorded.evaluation
        tools = ", ".join(f"{name} {v}".strip() for name, v in evaluation.tools.items())
        facts = [("Method", evaluation.method), ("Tools", _or_none(tools))]
        blocks.append(_facts(facts, _about(recorded)))
        importance = evaluation.feature_importance
        top = sorted(importance, key=lambda f: (-abs(importance[f]), f))[:TOP_FEATURES]
        caption = f"Top {len(top)} of {len(importance)} features by importance"
        blocks.append(_table(caption, ("Feature", "Importance"), ([f, importance[f]] for f in top)))
    return blocks


def _risk(model: ModelState) -> list[Block]:
    risk = model.risk
    if risk is None:
        return []
    facts = [
        ("Tier", risk.tier),
        ("Method", risk.method),
        ("Rationale", _or_none(risk.rationale)),
        ("Assessed by", risk.assessed_by),
        ("Assessed", _time(risk.assessed_at)),
        ("Policy version", risk.policy_version),
    ]
    blocks = [_facts(facts)]
    if risk.answers:
        answers = ([q, a] for q, a in risk.answers.items())
        blocks.append(_table("Questionnaire answers", ("Question", "Answer"), answers))
    return blocks


def _compliance(
    model: ModelState, version: VersionState, policies: PolicySet, envelopes: Sequence[Envelope]
) -> list[Block]:
    reports = [
        compliance_report(profile, model, version, policies, list(envelopes))
        for profile in policies.profiles
    ]
    if not reports:
        return []
    caption = f"Profiles of governance document version {policies.version}"
    blocks = [_facts(((r["profile"], r["met"]) for r in reports), caption)]
    for report in reports:
        verdict = "met" if report["met"] else "not met"
        rows = ([r["title"], r["check"], r["met"], r["seen"]] for r in report["requirements"])
        columns = ("Requirement", "Check", "Met", "Value seen")
        blocks.append(_table(f"Profile {report['profile']}: {verdict}", columns, rows))
    return blocks


def _approvals(model: ModelState, number: int) -> list[Block]:
    """Each governed move of the version that applied, with each approval that counted."""
    rows: list[list[Any]] = []
    applied = (
        r
        for r in model.requests.values()
        if r.version == number and r.state == "applied" and r.authorization is not None
    )
    for request in sorted(applied, key=lambda r: r.updated_at):
        authorization = request.authorization
        assert authorization is not None
        passed = sum(1 for gate in authorization.gates if gate.passed)
        gates = f"{passed} of {len(authorization.gates)} passed" if authorization.gates else None
        target = f"stage {request.stage.value}" if request.stage else f"alias {request.alias}"
        move = [target, _time(request.updated_at), request.requested_by]
        terms = [authorization.policy_version, authorization.scope, gates]
        # A move that needed no approval (gates only) still shows, with no approver.
        approvals = [[a.by, _time(a.at)] for a in authorization.approvals] or [[None, None]]
        rows += [[*move, *approval, *terms] for approval in approvals]
    if not rows:
        return []
    columns = (
        "Move",
        "Applied at",
        "Requested by",
        "Approved by",
        "Approved at",
        "Policy version",
        "Scope",
        "Gates",
    )
    return [_table("Governed moves of this version and their approvals", columns, rows)]
