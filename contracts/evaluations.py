"""Evaluations: immutable records on a version of how it performed, how fair it is, what drives its
predictions, how robust it is, and what was done to mitigate bias. What a caller sends
(`EvaluationInput`), and the values the recorded event holds."""

from __future__ import annotations

import re
from typing import Annotated, Any, Self
from uuid import UUID

from pydantic import Field, model_validator

from registrar.contracts.values import (
    DatasetInput,
    DatasetRef,
    Digest,
    Frozen,
    Inbound,
    Metrics,
    MetricValue,
    ModelName,
    VersionNumber,
)

STANDARD_KINDS = ("performance", "fairness", "explainability", "robustness", "mitigation")
"""The kinds Registrar knows the shape of; any other lowercase name is a custom kind."""
_KIND = re.compile(r"[a-z][a-z0-9_-]{0,63}")
MAX_GROUPS = 1_000
MAX_FEATURES = 10_000
COUNT_KEYS = ("tp", "fp", "tn", "fn")

Name = Annotated[str, Field(min_length=1, max_length=256)]
Text = Annotated[str, Field(max_length=10_000)]


class ReportRef(Frozen):
    """A report of the evaluation kept elsewhere (a notebook, a PDF), checkable by its digest."""

    uri: Annotated[str, Field(min_length=1, max_length=4096)]
    digest: Digest = ""


class GroupCounts(Frozen):
    """One group's confusion counts: true/false positives and negatives."""

    tp: Annotated[int, Field(ge=0)]
    fp: Annotated[int, Field(ge=0)]
    tn: Annotated[int, Field(ge=0)]
    fn: Annotated[int, Field(ge=0)]


class EvaluationInput(Inbound):
    """An evaluation as a caller (HTTP, the client, `evaluation.completed`) gives it. A fairness
    evaluation gives per-group confusion counts; Registrar derives the rates and disparities."""

    kind: Annotated[str, Field(description=f"{', '.join(STANDARD_KINDS)}, or a custom kind")]
    dataset: DatasetInput | None = Field(default=None, description="What it ran on: joins lineage")
    metrics: Metrics = Field(default_factory=dict)
    groups: dict[Name, Metrics] = Field(
        default_factory=dict,
        max_length=MAX_GROUPS,
        description="Per-group results; for fairness each group's counts tp, fp, tn, fn",
    )
    sensitive_feature: Annotated[str, Field(max_length=256)] = ""
    method: Annotated[str, Field(max_length=256)] = ""
    tools: dict[Name, Annotated[str, Field(max_length=256)]] = Field(
        default_factory=dict, max_length=100, description="Tool names and their versions"
    )
    feature_importance: dict[Name, MetricValue] = Field(
        default_factory=dict, max_length=MAX_FEATURES
    )
    technique: Annotated[str, Field(max_length=256)] = Field(
        default="", description="A mitigation's technique, e.g. threshold optimisation"
    )
    before: list[Name] = Field(
        default_factory=list, max_length=100, description="Mitigation: fairness evaluations before"
    )
    after: list[Name] = Field(
        default_factory=list, max_length=100, description="Mitigation: fairness evaluations after"
    )
    report: ReportRef | None = None
    description: Text = ""

    @model_validator(mode="after")
    def _shape_of_its_kind(self) -> Self:
        if not _KIND.fullmatch(self.kind):
            raise ValueError(
                f"kind {self.kind!r}: one of {', '.join(STANDARD_KINDS)}, or a custom kind of"
                " lowercase letters, digits, _ and - (at most 64)"
            )
        if self.kind == "fairness":
            if not self.sensitive_feature:
                raise ValueError("a fairness evaluation names its sensitive_feature")
            if not self.groups:
                raise ValueError(
                    'a fairness evaluation gives groups: {"F": {"tp": .., "fp": .., "tn": ..,'
                    ' "fn": ..}, ...}'
                )
            for group, values in self.groups.items():
                if set(values) != set(COUNT_KEYS) or any(
                    v < 0 or v != int(v) for v in values.values()
                ):
                    raise ValueError(
                        f"group {group!r}: give exactly the counts tp, fp, tn, fn, as whole"
                        " numbers of at least 0"
                    )
                if not sum(values.values()):
                    raise ValueError(f"group {group!r} has no members (every count is 0)")
        if self.kind == "explainability" and (not self.method or not self.feature_importance):
            raise ValueError(
                "an explainability evaluation gives its method (e.g. shap) and"
                " feature_importance (feature: importance)"
            )
        if self.kind == "mitigation" and (not self.technique or not (self.before and self.after)):
            raise ValueError(
                "a mitigation evaluation names its technique and the fairness evaluations"
                " before and after it (their ids)"
            )
        return self

    def counts(self) -> dict[str, GroupCounts]:
        return {g: GroupCounts(**{k: int(v) for k, v in c.items()}) for g, c in self.groups.items()}


class FairnessSummary(Frozen):
    """Disparities across the groups of one sensitive feature, with fairlearn's names."""

    sensitive_feature: str
    demographic_parity_difference: float
    demographic_parity_ratio: float
    equalized_odds_difference: float
    equalized_odds_ratio: float
    four_fifths_rule: bool = Field(
        description="The lowest selection rate is at least 4/5 of the highest"
    )


class Evaluation(Frozen):
    """An evaluation as recorded: the input's facts, the derived figures, who and which id."""

    evaluation_id: str
    kind: str
    dataset: DatasetRef | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    groups: dict[str, dict[str, float]] = Field(default_factory=dict)
    fairness: FairnessSummary | None = None
    sensitive_feature: str = ""
    method: str = ""
    tools: dict[str, str] = Field(default_factory=dict)
    feature_importance: dict[str, float] = Field(default_factory=dict)
    technique: str = ""
    before: list[str] = Field(default_factory=list)
    after: list[str] = Field(default_factory=list)
    report: ReportRef | None = None
    description: str = ""
    recorded_by: str = ""

    def metric(self, name: str) -> float | None:
        """A figure gates can compare: a metric, or a fairness disparity by its name."""
        if name in self.metrics:
            return self.metrics[name]
        if self.fairness is not None:
            value: Any = getattr(self.fairness, name, None)
            if isinstance(value, bool):
                return float(value)
            if isinstance(value, int | float):
                return float(value)
        return None


class EvaluationCompleted(Inbound):
    """An evaluation pipeline's report on Kafka topic `evaluation.completed`: an evaluation of
    version `version` of model `model_name`. `message_id` identifies the message: the recording
    command's id is derived from it, so a redelivered message records nothing twice (and the same
    id sent again with another evaluation is refused)."""

    message_id: UUID
    model_name: ModelName
    version: VersionNumber
    evaluation: EvaluationInput
    producer: Annotated[str, Field(max_length=256)] = ""
