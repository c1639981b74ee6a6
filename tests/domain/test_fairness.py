"""Registrar's fairness arithmetic (registrar.domain.fairness) cross-checked against fairlearn's on
the same predictions: every group's rates and every disparity agree to 1e-12. Where fairlearn has
no number (a ratio whose largest rate is 0 is 0/0: NaN), the tests say what Registrar gives."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pytest
from fairlearn.metrics import (  # type: ignore[import-untyped]
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from registrar.contracts.evaluations import FairnessSummary, GroupCounts
from registrar.domain.fairness import counts_from_predictions, group_figures, summary

TOLERANCE = 1e-12
RATES = ("selection_rate", "true_positive_rate", "false_positive_rate")
DISPARITIES = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
)


@dataclass(frozen=True)
class Group:
    share: float
    base_rate: float  # P(label = 1)
    tpr: float  # P(prediction = 1 | label = 1)
    fpr: float  # P(prediction = 1 | label = 0)


@dataclass(frozen=True)
class Predictions:
    labels: np.ndarray
    predictions: np.ndarray
    groups: np.ndarray


def generated(seed: int, groups: Mapping[str, Group], size: int) -> Predictions:
    """`size` seeded random rows: each row's group by its share, its label by the group's base
    rate, its prediction by the group's true or false positive rate."""
    rng = np.random.default_rng(seed)
    names = list(groups)
    shares = np.array([groups[n].share for n in names])
    drawn = rng.choice(len(names), size=size, p=shares / shares.sum())
    base = np.array([groups[n].base_rate for n in names])[drawn]
    tpr = np.array([groups[n].tpr for n in names])[drawn]
    fpr = np.array([groups[n].fpr for n in names])[drawn]
    labels = (rng.random(size) < base).astype(int)
    predictions = (rng.random(size) < np.where(labels == 1, tpr, fpr)).astype(int)
    return Predictions(labels, predictions, np.array(names)[drawn])


def from_counts(counts: Mapping[str, GroupCounts]) -> Predictions:
    """Rows that have exactly these confusion counts."""
    labels: list[int] = []
    predictions: list[int] = []
    groups: list[str] = []
    for group, c in counts.items():
        for label, predicted, times in ((1, 1, c.tp), (0, 1, c.fp), (0, 0, c.tn), (1, 0, c.fn)):
            labels += [label] * times
            predictions += [predicted] * times
            groups += [group] * times
    return Predictions(np.array(labels), np.array(predictions), np.array(groups))


def registrar_figures(data: Predictions) -> tuple[dict[str, dict[str, float]], FairnessSummary]:
    counts = counts_from_predictions(
        data.labels.tolist(), data.predictions.tolist(), data.groups.tolist()
    )
    groups = {group: group_figures(c) for group, c in counts.items()}
    return groups, summary("group", groups)


def fairlearn_figures(data: Predictions) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    frame = MetricFrame(
        metrics={
            "count": count,
            "selection_rate": selection_rate,
            "true_positive_rate": true_positive_rate,
            "false_positive_rate": false_positive_rate,
        },
        y_true=data.labels,
        y_pred=data.predictions,
        sensitive_features=data.groups,
    )
    by_group = {
        str(group): {name: float(value) for name, value in row.items()}
        for group, row in frame.by_group.iterrows()
    }
    given = (data.labels, data.predictions)
    disparities = {
        "demographic_parity_difference": demographic_parity_difference(
            *given, sensitive_features=data.groups
        ),
        "demographic_parity_ratio": demographic_parity_ratio(
            *given, sensitive_features=data.groups
        ),
        "equalized_odds_difference": equalized_odds_difference(
            *given, sensitive_features=data.groups
        ),
        "equalized_odds_ratio": equalized_odds_ratio(*given, sensitive_features=data.groups),
    }
    return by_group, {name: float(value) for name, value in disparities.items()}


SEEDED = {
    "two groups, different base rates": (
        7,
        {"F": Group(0.45, 0.30, 0.80, 0.10), "M": Group(0.55, 0.45, 0.70, 0.20)},
        2_000,
    ),
    "three groups of unequal size": (
        11,
        {
            "a": Group(0.70, 0.20, 0.85, 0.05),
            "b": Group(0.25, 0.50, 0.60, 0.25),
            "c": Group(0.05, 0.70, 0.90, 0.40),
        },
        5_000,
    ),
    "four groups, one rare": (
        23,
        {
            "18-25": Group(0.30, 0.10, 0.50, 0.02),
            "26-40": Group(0.40, 0.25, 0.75, 0.08),
            "41-65": Group(0.28, 0.40, 0.80, 0.15),
            "65+": Group(0.02, 0.60, 0.95, 0.30),
        },
        3_000,
    ),
}


@pytest.mark.parametrize(("seed", "groups", "size"), SEEDED.values(), ids=SEEDED.keys())
def test_rates_and_disparities_equal_fairlearns_on_random_predictions(
    seed: int, groups: Mapping[str, Group], size: int
) -> None:
    data = generated(seed, groups, size)
    ours, disparities = registrar_figures(data)
    theirs, expected = fairlearn_figures(data)

    assert set(ours) == set(theirs) == set(groups)
    for group in groups:
        assert ours[group]["count"] == theirs[group]["count"]
        for rate in RATES:
            assert ours[group][rate] == pytest.approx(theirs[group][rate], abs=TOLERANCE)
    for name in DISPARITIES:
        assert getattr(disparities, name) == pytest.approx(expected[name], abs=TOLERANCE)


def test_a_group_without_actual_positives_has_a_true_positive_rate_of_0_in_both() -> None:
    # fairlearn's true_positive_rate is scikit-learn's confusion matrix normalised by row, whose
    # 0/0 becomes 0; Registrar's rate is 0 where its denominator is. Either way that group's
    # (undefined) rate is the lowest, so the equalized odds ratio is 0 and its difference the
    # largest true positive rate.
    data = generated(
        3,
        {
            "with": Group(0.5, 0.40, 0.75, 0.10),
            "without": Group(0.3, 0.00, 0.75, 0.20),
            "other": Group(0.2, 0.55, 0.65, 0.15),
        },
        1_500,
    )
    assert not data.labels[data.groups == "without"].any()
    ours, disparities = registrar_figures(data)
    theirs, expected = fairlearn_figures(data)

    assert ours["without"]["true_positive_rate"] == theirs["without"]["true_positive_rate"] == 0.0
    for group in ours:
        for rate in RATES:
            assert ours[group][rate] == pytest.approx(theirs[group][rate], abs=TOLERANCE)
    for name in DISPARITIES:
        assert getattr(disparities, name) == pytest.approx(expected[name], abs=TOLERANCE)
    assert disparities.equalized_odds_ratio == expected["equalized_odds_ratio"] == 0.0
    top = max(ours["with"]["true_positive_rate"], ours["other"]["true_positive_rate"])
    assert disparities.equalized_odds_difference == pytest.approx(top, abs=TOLERANCE)


def test_where_no_one_is_selected_fairlearns_ratios_are_nan_and_registrars_are_1() -> None:
    # Every rate is 0: min / max is 0/0. fairlearn answers NaN; Registrar calls the groups equal
    # (ratio 1), so the four-fifths rule holds. The differences are 0 in both.
    data = from_counts(
        {"A": GroupCounts(tp=0, fp=0, tn=30, fn=10), "B": GroupCounts(tp=0, fp=0, tn=50, fn=5)}
    )
    _, disparities = registrar_figures(data)
    _, expected = fairlearn_figures(data)

    assert math.isnan(expected["demographic_parity_ratio"])
    assert math.isnan(expected["equalized_odds_ratio"])
    assert disparities.demographic_parity_ratio == 1.0
    assert disparities.equalized_odds_ratio == 1.0
    assert disparities.four_fifths_rule
    assert disparities.demographic_parity_difference == expected["demographic_parity_difference"]
    assert disparities.equalized_odds_difference == expected["equalized_odds_difference"] == 0.0


def test_where_no_one_is_an_actual_positive_fairlearns_equalized_odds_ratio_is_nan() -> None:
    # Every true positive rate is 0, so their ratio is 0/0. fairlearn takes Python's min() of
    # (NaN, false positive rate ratio): NaN, as NaN comes first. Registrar takes the true positive
    # ratio as 1, so the equalized odds ratio is the false positive rates' ratio.
    data = from_counts(
        {"A": GroupCounts(tp=0, fp=10, tn=30, fn=0), "B": GroupCounts(tp=0, fp=20, tn=20, fn=0)}
    )
    _, disparities = registrar_figures(data)
    _, expected = fairlearn_figures(data)

    assert math.isnan(expected["equalized_odds_ratio"])
    assert disparities.equalized_odds_ratio == pytest.approx(0.25 / 0.5, abs=TOLERANCE)
    for name in DISPARITIES[:3]:
        assert getattr(disparities, name) == pytest.approx(expected[name], abs=TOLERANCE)


def test_where_no_one_is_an_actual_negative_both_give_the_true_positive_rates_ratio() -> None:
    # Every false positive rate is 0 (0/0 in each group): fairlearn's min() of (true positive
    # ratio, NaN) keeps the first, the true positive ratio, which is Registrar's figure too.
    data = from_counts(
        {"A": GroupCounts(tp=30, fp=0, tn=0, fn=10), "B": GroupCounts(tp=15, fp=0, tn=0, fn=15)}
    )
    _, disparities = registrar_figures(data)
    _, expected = fairlearn_figures(data)

    for name in DISPARITIES:
        assert getattr(disparities, name) == pytest.approx(expected[name], abs=TOLERANCE)
    assert disparities.equalized_odds_ratio == pytest.approx(0.5 / 0.75, abs=TOLERANCE)


def selected(chosen: int, of: int) -> GroupCounts:
    """A group of `of` members, `chosen` of them selected, about half of them actually positive."""
    return GroupCounts(
        tp=chosen // 2,
        fp=chosen - chosen // 2,
        tn=of // 2 - (chosen - chosen // 2),
        fn=of - of // 2 - chosen // 2,
    )


@pytest.mark.parametrize(
    ("lower", "higher", "holds"),
    [
        ((4_001, 10_000), (5_000, 10_000), True),
        ((3_999, 10_000), (5_000, 10_000), False),
        ((400, 1_000), (500, 1_000), True),
        # Exactly 4/5, yet (2/3) / (5/6) is 0.7999999999999999 in floating point, as fairlearn
        # gives it: Registrar decides the rule on the exact fractions, and rounds the ratio once.
        ((2, 3), (5, 6), True),
        ((2_000, 3_001), (5, 6), False),
    ],
    ids=["0.8002", "0.7998", "0.8 exactly", "2/3 over 5/6", "0.79973"],
)
def test_the_four_fifths_rule_holds_from_a_selection_rate_ratio_of_exactly_4_5(
    lower: tuple[int, int], higher: tuple[int, int], holds: bool
) -> None:
    counts = {"low": selected(*lower), "high": selected(*higher)}
    data = from_counts(counts)
    _, disparities = registrar_figures(data)
    _, expected = fairlearn_figures(data)

    assert disparities.four_fifths_rule is holds
    assert disparities.demographic_parity_ratio == pytest.approx(
        expected["demographic_parity_ratio"], abs=TOLERANCE
    )
    assert (disparities.demographic_parity_ratio >= 0.8) is holds


def test_counts_from_predictions_tallies_each_groups_confusion_matrix() -> None:
    counts = counts_from_predictions(
        iter([1, 1, 0, 0, 1, 0]), iter([1, 0, 1, 0, 1, 0]), iter(["a", "a", "a", "a", "b", "b"])
    )

    assert counts == {
        "a": GroupCounts(tp=1, fp=1, tn=1, fn=1),
        "b": GroupCounts(tp=1, fp=0, tn=1, fn=0),
    }


def test_labels_predictions_and_groups_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="zip"):
        counts_from_predictions([1, 0], [1], ["a", "a"])
