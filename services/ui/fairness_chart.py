"""A fairness evaluation's per-group rates as an SVG bar chart, drawn on the server: selection
rate, true positive rate and false positive rate of each group on one 0-1 scale, with the
four-fifths line (4/5 of the highest selection rate). Readable without JavaScript; every label is
escaped text, and the same figures are in the model card's table beside it."""

from __future__ import annotations

from collections.abc import Mapping

from markupsafe import Markup, escape

RATES = (
    ("selection_rate", "Selection rate", "#1d4ed8"),
    ("true_positive_rate", "True positive rate", "#047857"),
    ("false_positive_rate", "False positive rate", "#b45309"),
)
"""(figure, label, colour): colours of at least 4.5:1 against white, told apart by shade too."""
WIDTH = 680
LABEL_WIDTH = 150
PLOT_WIDTH = 440
BAR = 14
BAR_GAP = 3
GROUP_GAP = 16
TOP = 44
MAX_LABEL = 22


def _short(text: str, length: int = MAX_LABEL) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def _number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if value else "0"


def fairness_chart(
    groups: Mapping[str, Mapping[str, float]], sensitive_feature: str, chart_id: str
) -> Markup:
    """The chart of `groups` (each group's figures, as a fairness evaluation records them)."""
    names = list(groups)
    block = len(RATES) * (BAR + BAR_GAP) + GROUP_GAP
    height = TOP + len(names) * block + 34
    x0 = LABEL_WIDTH
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" role="img" viewBox="0 0 {WIDTH} {height}"'
        f' width="{WIDTH}" height="{height}" aria-labelledby="{escape(chart_id)}-title'
        f' {escape(chart_id)}-desc" data-field="fairness-chart">',
        f'<title id="{escape(chart_id)}-title">Rates by {escape(sensitive_feature)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(_description(groups))}</desc>',
    ]
    for index, (_, label, colour) in enumerate(RATES):  # the legend
        x = x0 + index * 150
        parts.append(f'<rect x="{x}" y="8" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 17}" y="18" class="legend">{escape(label)}</text>')
    bottom = height - 30
    for tick in (0, 0.25, 0.5, 0.75, 1):  # the scale
        x = x0 + tick * PLOT_WIDTH
        parts.append(
            f'<line x1="{x:.1f}" y1="{TOP - 8}" x2="{x:.1f}" y2="{bottom}" class="grid"/>'
            f'<text x="{x:.1f}" y="{bottom + 16}" class="tick" text-anchor="middle">{tick:g}</text>'
        )
    selection = [g.get("selection_rate") for g in groups.values()]
    highest = max((s for s in selection if s is not None), default=None)
    for row, name in enumerate(names):
        y = TOP + row * block
        parts.append(
            f'<text x="{x0 - 10}" y="{y + block / 2 - GROUP_GAP / 2 + 4:.1f}" class="group"'
            f' text-anchor="end"><title>{escape(name)}</title>{escape(_short(name))}</text>'
        )
        for index, (key, label, colour) in enumerate(RATES):
            value = groups[name].get(key)
            top = y + index * (BAR + BAR_GAP)
            if value is None:
                parts.append(f'<text x="{x0 + 4}" y="{top + 11}" class="value">n/a</text>')
                continue
            clamped = min(max(value, 0.0), 1.0)
            width = max(clamped * PLOT_WIDTH, 1)
            parts.append(
                f'<rect x="{x0}" y="{top}" width="{width:.1f}" height="{BAR}" fill="{colour}">'
                f"<title>{escape(name)}: {escape(label)} {_number(value)}</title></rect>"
                f'<text x="{x0 + width + 5:.1f}" y="{top + 11}" class="value">'
                f"{_number(value)}</text>"
            )
    if highest:
        x = x0 + min(0.8 * highest, 1) * PLOT_WIDTH
        parts.append(
            f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{bottom}" class="threshold"/>'
            f'<text x="{x + 4:.1f}" y="{TOP - 10}" class="threshold-label">4/5 of the highest'
            " selection rate</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _description(groups: Mapping[str, Mapping[str, float]]) -> str:
    lines = []
    for name, figures in groups.items():
        rates = ", ".join(
            f"{label.lower()} {_number(figures[key])}"
            for key, label, _ in RATES
            if figures.get(key) is not None
        )
        lines.append(f"{name}: {rates}")
    return "; ".join(lines)
