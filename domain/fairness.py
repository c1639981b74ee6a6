"""Fairness figures from per-group confusion counts, with fairlearn's names and definitions
(fairlearn.metrics: selection_rate, true_positive_rate, false_positive_rate,
demographic_parity_difference/ratio, equalized_odds_difference/ratio with the "between_groups"
method). Registrar's own arithmetic: nothing beyond the base install computes it.

Where a rate's denominator is 0 (a group with no actual positives has no true-positive rate), the
rate is 0, as scikit-learn's zero_division default gives; where the largest rate is 0, the ratio
is 1 (every group is equal), where fairlearn gives NaN. The four-fifths rule is decided on the
exact selection rates (fractions of counts): in floating point 2/3 over 5/6 is 0.7999999999999999,
yet it is exactly 4/5, and meets the rule."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction

from registrar.contracts.evaluations import FairnessSummary, GroupCounts

FOUR_FIFTHS = Fraction(4, 5)


def _rate(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def group_figures(counts: GroupCounts) -> dict[str, float]:
    """One group's counts and rates: count, selection_rate, true_positive_rate,
    false_positive_rate (and the counts themselves, kept as evidence)."""
    total = counts.tp + counts.fp + counts.tn + counts.fn
    return {
        "count": float(total),
        "tp": float(counts.tp),
        "fp": float(counts.fp),
        "tn": float(counts.tn),
        "fn": float(counts.fn),
        "selection_rate": _rate(counts.tp + counts.fp, total),
        "true_positive_rate": _rate(counts.tp, counts.tp + counts.fn),
        "false_positive_rate": _rate(counts.fp, counts.fp + counts.tn),
    }


def _spread(values: list[float]) -> tuple[float, float]:
    """(max - min, min / max) of `values`."""
    low, high = min(values), max(values)
    return high - low, (low / high if high else 1.0)


def _exact_selection_rate(figures: Mapping[str, float]) -> Fraction:
    total = int(figures["count"])
    return Fraction(int(figures["tp"] + figures["fp"]), total) if total else Fraction(0)


def summary(sensitive_feature: str, groups: Mapping[str, Mapping[str, float]]) -> FairnessSummary:
    """The disparities across `groups` (each as `group_figures` gives it)."""
    selection = [g["selection_rate"] for g in groups.values()]
    tpr = [g["true_positive_rate"] for g in groups.values()]
    fpr = [g["false_positive_rate"] for g in groups.values()]
    dp_difference, _ = _spread(selection)
    exact = [_exact_selection_rate(g) for g in groups.values()]
    lowest, highest = min(exact), max(exact)
    # Rounded once, from the exact ratio: a gate on the ratio then agrees with the flag below.
    dp_ratio = float(lowest / highest) if highest else 1.0
    tpr_difference, tpr_ratio = _spread(tpr)
    fpr_difference, fpr_ratio = _spread(fpr)
    return FairnessSummary(
        sensitive_feature=sensitive_feature,
        demographic_parity_difference=dp_difference,
        demographic_parity_ratio=dp_ratio,
        equalized_odds_difference=max(tpr_difference, fpr_difference),
        equalized_odds_ratio=min(tpr_ratio, fpr_ratio),
        four_fifths_rule=lowest >= FOUR_FIFTHS * highest,
    )


def tally_predictions(rows: Iterable[tuple[int, int, str]]) -> dict[str, GroupCounts]:
    """Per-group confusion counts of (label, prediction, group) rows, label and prediction binary
    (1 positive, 0 not). The rows are read once, one at a time: a stream of any length needs
    memory only for its groups."""
    tallies: dict[str, list[int]] = {}
    for label, predicted, group in rows:
        tally = tallies.setdefault(group, [0, 0, 0, 0])
        tally[(0 if label else 2) + (0 if bool(predicted) == bool(label) else 1)] += 1
    return {group: GroupCounts(tp=t[0], fn=t[1], tn=t[2], fp=t[3]) for group, t in tallies.items()}


def counts_from_predictions(
    labels: Iterable[int], predictions: Iterable[int], groups: Iterable[str]
) -> dict[str, GroupCounts]:
    """Per-group confusion counts of binary `labels` and `predictions` (1 positive, 0 not)."""
    return tally_predictions(zip(labels, predictions, groups, strict=True))
