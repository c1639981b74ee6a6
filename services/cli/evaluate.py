"""`registrar evaluate fairness`: a version's fairness evaluation from a CSV of its predictions,
tallied here into per-group confusion counts (row by row: a file of any size) and recorded on the
running Registrar ($REGISTRAR_URL, $REGISTRAR_TOKEN), which derives the rates and disparities."""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from registrar.cli.server_calls import run_with_client

if TYPE_CHECKING:
    from registrar.client import Client
    from registrar.contracts.evaluations import GroupCounts
    from registrar.contracts.values import DatasetInput

METHOD = "confusion counts from predictions"
# With the default positive label "1", what Python, pandas and most tools write for a boolean.
_DEFAULT_POSITIVES = frozenset({"1", "1.0", "true"})
_DEFAULT_NEGATIVES = frozenset({"0", "0.0", "false"})


class PredictionsError(ValueError):
    """The predictions file cannot give the counts: what is wrong in it, and where."""


def _dataset_argument(value: str) -> DatasetInput:
    from registrar.contracts.values import DatasetInput

    name, at, version = value.rpartition("@")
    if not at:
        name, version = value, ""
    try:
        return DatasetInput(name=name, version=version)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r}: give the dataset as NAME@VERSION (or NAME), e.g. census@2024-06"
        ) from None


def add_evaluation_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="record an evaluation of a version computed here from its predictions (against the"
        " running server at $REGISTRAR_URL, default http://127.0.0.1:8080)",
    )
    kinds = evaluate.add_subparsers(dest="evaluate_command", required=True)
    fairness = kinds.add_parser(
        "fairness",
        help="per-group confusion counts from a CSV of labels, predictions and a sensitive"
        " feature, recorded as a fairness evaluation; the last line printed is the recorded"
        " evaluation as JSON",
    )
    fairness.add_argument("name", metavar="NAME", help="the model")
    fairness.add_argument("version", metavar="VERSION", type=int, help="its version number")
    fairness.add_argument(
        "--predictions", metavar="FILE.csv", type=Path, required=True, help="with a header row"
    )
    fairness.add_argument(
        "--label-column", metavar="COLUMN", required=True, help="the true outcome"
    )
    fairness.add_argument(
        "--prediction-column", metavar="COLUMN", required=True, help="the model's prediction"
    )
    fairness.add_argument(
        "--sensitive-column",
        metavar="COLUMN",
        required=True,
        help="the groups compared (e.g. sex); its name is recorded as the sensitive feature",
    )
    fairness.add_argument(
        "--dataset",
        type=_dataset_argument,
        metavar="NAME@VERSION",
        help="the dataset the predictions were made on (joins the lineage)",
    )
    fairness.add_argument(
        "--positive-label",
        metavar="VALUE",
        default="1",
        help="the value meaning positive in the label and prediction columns; every other value"
        " of a column is negative, and there may be only one (default 1: also true or 1.0, with"
        " 0, false or 0.0 negative)",
    )


class BinaryColumn:
    """One column's values as 1 (the positive label) or 0. A column with two values besides the
    positive one is not binary, and is refused rather than guessed at."""

    def __init__(self, name: str, positive: str) -> None:
        self.name = name
        self.positive = positive
        self.negative: str | None = None

    def __call__(self, value: str, line: int) -> int:
        if value == self.positive:
            return 1
        if self.positive == "1":
            folded = value.lower()
            if folded in _DEFAULT_POSITIVES:
                return 1
            if folded in _DEFAULT_NEGATIVES:
                return 0
            raise PredictionsError(
                f"line {line}: column {self.name!r} holds {value!r}, which is neither 1 (true)"
                " nor 0 (false): name the value that means positive with --positive-label"
            )
        if self.negative is None:
            self.negative = value
        elif value != self.negative:
            raise PredictionsError(
                f"line {line}: column {self.name!r} holds {self.negative!r} and {value!r}, and"
                f" neither is the positive label {self.positive!r}: a binary column has one"
                " positive and one negative value (check --positive-label)"
            )
        return 0


@dataclass(frozen=True)
class Tallied:
    """A predictions file's confusion counts by group, and how many rows gave them."""

    counts: dict[str, GroupCounts]
    rows: int


def tally_csv(
    path: Path, label_column: str, prediction_column: str, sensitive_column: str, positive: str
) -> Tallied:
    """Per-group confusion counts of the CSV at `path`, read a row at a time."""
    from registrar.contracts.evaluations import MAX_GROUPS
    from registrar.domain.fairness import tally_predictions

    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if header is None:
                raise PredictionsError(f"{path} is empty: it needs a header row naming columns")
            wanted = (label_column, prediction_column, sensitive_column)
            missing = [c for c in dict.fromkeys(wanted) if c not in header]
            if missing:
                named = "column" if len(missing) == 1 else "columns"
                raise PredictionsError(
                    f"{path} has no {named} {', '.join(map(repr, missing))} (its columns:"
                    f" {', '.join(header)})"
                )
            at = [header.index(c) for c in wanted]
            label = BinaryColumn(label_column, positive)
            predicted = BinaryColumn(prediction_column, positive)
            rows = 0

            def binary_rows() -> Iterator[tuple[int, int, str]]:
                nonlocal rows
                for row in reader:
                    if not row:  # a blank line
                        continue
                    line = reader.line_num
                    if len(row) < len(header):
                        raise PredictionsError(
                            f"line {line} has {len(row)} fields where the header has {len(header)}"
                        )
                    values = [row[i].strip() for i in at]
                    for column, value in zip(wanted, values, strict=True):
                        if not value:
                            raise PredictionsError(f"line {line}: column {column!r} is empty")
                    rows += 1
                    yield label(values[0], line), predicted(values[1], line), values[2]

            counts = tally_predictions(binary_rows())
    except UnicodeDecodeError as unreadable:
        raise PredictionsError(f"{path} is not UTF-8 text: {unreadable}") from None
    except csv.Error as malformed:
        raise PredictionsError(
            f"{path} is not a well-formed CSV file: line {reader.line_num}: {malformed}"
        ) from None
    except OSError as unreadable:
        raise PredictionsError(f"cannot read {path}: {unreadable.strerror}") from None
    if not rows:
        raise PredictionsError(f"{path} has a header but no rows")
    if len(counts) > MAX_GROUPS:
        raise PredictionsError(
            f"column {sensitive_column!r} holds {len(counts):,} different values: more than the"
            f" {MAX_GROUPS:,} groups an evaluation may compare (is it the sensitive feature?)"
        )
    return Tallied(counts, rows)


def _record_fairness(client: Client, args: argparse.Namespace) -> int:
    from registrar import __version__
    from registrar.contracts.codec import dumps
    from registrar.contracts.evaluations import EvaluationInput

    tallied = tally_csv(
        args.predictions,
        args.label_column,
        args.prediction_column,
        args.sensitive_column,
        args.positive_label.strip(),
    )
    evaluation = EvaluationInput(
        kind="fairness",
        sensitive_feature=args.sensitive_column,
        groups={g: c.model_dump() for g, c in tallied.counts.items()},
        dataset=args.dataset,
        method=METHOD,
        tools={"registrar": __version__},
    )
    answer = client.record_evaluation(args.name, args.version, evaluation)
    # As GET .../evaluations/{id} serves it: the write's position is the answer's, not the record's.
    stored = answer.model_dump(mode="json", exclude={"position"})
    fairness = stored["fairness"]
    print(
        f"recorded fairness evaluation {stored['evaluation_id']} of {args.name} version"
        f" {args.version}: {tallied.rows:,} rows, {len(tallied.counts)} groups by"
        f" {args.sensitive_column!r}"
    )
    for group, figures in stored["groups"].items():
        print(
            f"  {group}: {int(figures['count']):,} rows, selection rate"
            f" {figures['selection_rate']:.4f}, true positive rate"
            f" {figures['true_positive_rate']:.4f}, false positive rate"
            f" {figures['false_positive_rate']:.4f}"
        )
    verdict = "met" if fairness["four_fifths_rule"] else "NOT met"
    print(
        f"demographic parity difference {fairness['demographic_parity_difference']:.4f}, ratio"
        f" {fairness['demographic_parity_ratio']:.4f} (four-fifths rule {verdict});"
        f" equalized odds difference {fairness['equalized_odds_difference']:.4f}, ratio"
        f" {fairness['equalized_odds_ratio']:.4f}"
    )
    print(dumps(stored).decode())
    return 0


def run_evaluate_command(args: argparse.Namespace) -> int:
    command = f"registrar evaluate {args.evaluate_command}"
    return run_with_client(command, lambda client: _record_fairness(client, args))
