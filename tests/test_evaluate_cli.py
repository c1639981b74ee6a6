"""`registrar evaluate fairness` as a user runs it: the real console script, a CSV of predictions,
against a real `registrar serve`; the evaluation it records is the one the API then serves."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fairlearn.metrics import demographic_parity_difference  # type: ignore[import-untyped]
from registrar_process import registrar_env, running_registrar

from registrar import __version__

BIN = Path(sys.executable).parent
COLUMNS = ("--label-column", "y", "--prediction-column", "y_pred", "--sensitive-column", "group")


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`registrar serve` on the module's fresh database: its URL."""
    home = Path(tmp_path_factory.mktemp("evaluate-cli-home"))
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url, REGISTRAR_HOME=str(home))
    with running_registrar("serve", "--port", "0", env=env, cwd=home) as (url, _):
        yield url


def registrar(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`registrar ARGS` as a shell would run it, with REGISTRAR_URL pointing at `url` only."""
    return subprocess.run(
        [str(BIN / "registrar"), *args],
        env=registrar_env(REGISTRAR_URL=url),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def new_version(url: str) -> tuple[str, int]:
    name = f"fair-{uuid.uuid4().hex[:8]}"
    httpx.post(f"{url}/v1/models", json={"name": name}).raise_for_status()
    created = httpx.post(f"{url}/v1/models/{name}/versions", json={"source": f"s3://m/{name}"})
    created.raise_for_status()
    return name, int(created.json()["version"])


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def random_predictions(path: Path, seed: int = 5, size: int = 3_000) -> Path:
    """Three groups with different base rates and error rates, and a column the CLI ignores."""
    rng = np.random.default_rng(seed)
    groups = np.array(["F", "M", "X"])[rng.choice(3, size=size, p=[0.45, 0.45, 0.10])]
    base = np.select([groups == "F", groups == "M"], [0.30, 0.45], 0.60)
    labels = (rng.random(size) < base).astype(int)
    tpr = np.select([groups == "F", groups == "M"], [0.80, 0.70], 0.90)
    fpr = np.select([groups == "F", groups == "M"], [0.10, 0.20], 0.35)
    predictions = (rng.random(size) < np.where(labels == 1, tpr, fpr)).astype(int)
    rows = [
        [f"{rng.random():.3f}", int(y), int(p), g]
        for y, p, g in zip(labels, predictions, groups, strict=True)
    ]
    return write_csv(path, ["score", "y", "y_pred", "group"], rows)


def recorded(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stdout + result.stderr
    answer: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return answer


def evaluations(url: str, name: str, version: int) -> list[dict[str, Any]]:
    listed = httpx.get(f"{url}/v1/models/{name}/versions/{version}/evaluations")
    listed.raise_for_status()
    found: list[dict[str, Any]] = listed.json()["evaluations"]
    return found


def test_the_recorded_evaluation_is_the_last_line_and_what_the_api_serves(
    server: str, tmp_path: Path
) -> None:
    name, version = new_version(server)
    predictions = random_predictions(tmp_path / "predictions.csv")

    result = registrar(
        server,
        *("evaluate", "fairness", name, str(version), "--predictions", str(predictions)),
        *COLUMNS,
        *("--dataset", "census@2024-06"),
        cwd=tmp_path,
    )

    evaluation = recorded(result)
    served = httpx.get(
        f"{server}/v1/models/{name}/versions/{version}/evaluations/{evaluation['evaluation_id']}"
    )
    assert served.status_code == 200
    assert evaluation == served.json()
    assert evaluation["kind"] == "fairness" and evaluation["sensitive_feature"] == "group"
    assert (
        evaluation["dataset"]["name"] == "census" and evaluation["dataset"]["version"] == "2024-06"
    )
    assert evaluation["method"] == "confusion counts from predictions"
    assert evaluation["tools"] == {"registrar": __version__}
    assert "recorded fairness evaluation" in result.stdout and "3,000 rows" in result.stdout

    with predictions.open(newline="") as file:
        rows = list(csv.DictReader(file))
    labels = np.array([int(r["y"]) for r in rows])
    predicted = np.array([int(r["y_pred"]) for r in rows])
    groups = np.array([r["group"] for r in rows])
    expected = demographic_parity_difference(labels, predicted, sensitive_features=groups)
    assert evaluation["fairness"]["demographic_parity_difference"] == pytest.approx(
        expected, abs=1e-12
    )
    for group in ("F", "M", "X"):
        members = groups == group
        tallied = evaluation["groups"][group]
        assert tallied["count"] == members.sum()
        assert tallied["tp"] == (members & (labels == 1) & (predicted == 1)).sum()
        assert tallied["fp"] == (members & (labels == 0) & (predicted == 1)).sum()


def test_a_positive_label_names_which_value_is_positive_and_true_false_are_understood(
    server: str, tmp_path: Path
) -> None:
    name, version = new_version(server)
    words = write_csv(
        tmp_path / "words.csv",
        ["y", "y_pred", "group"],
        [
            ["approved", "approved", "a"],
            ["approved", "denied", "a"],
            ["denied", "approved", "b"],
            ["denied", "denied", "b"],
        ],
    )
    booleans = write_csv(
        tmp_path / "booleans.csv",
        ["y", "y_pred", "group"],
        [["True", "true", "a"], ["FALSE", "1", "a"], ["0", "false", "b"], ["1", "False", "b"]],
    )
    evaluate = ("evaluate", "fairness", name, str(version), *COLUMNS)

    by_word = recorded(
        registrar(
            server,
            *evaluate,
            *("--predictions", str(words), "--positive-label", "approved"),
            cwd=tmp_path,
        )
    )
    by_truth = recorded(registrar(server, *evaluate, "--predictions", str(booleans), cwd=tmp_path))

    counts = ("tp", "fp", "tn", "fn")
    assert {g: [f[k] for k in counts] for g, f in by_word["groups"].items()} == {
        "a": [1, 0, 0, 1],
        "b": [0, 1, 1, 0],
    }
    assert {g: [f[k] for k in counts] for g, f in by_truth["groups"].items()} == {
        "a": [1, 1, 0, 0],
        "b": [0, 0, 1, 1],
    }


def test_a_missing_column_exits_1_naming_it_and_records_nothing(
    server: str, tmp_path: Path
) -> None:
    name, version = new_version(server)
    predictions = random_predictions(tmp_path / "predictions.csv", size=50)

    result = registrar(
        server,
        *("evaluate", "fairness", name, str(version), "--predictions", str(predictions)),
        *("--label-column", "y", "--prediction-column", "y_hat", "--sensitive-column", "group"),
        cwd=tmp_path,
    )

    assert result.returncode == 1
    assert "no column 'y_hat'" in result.stderr and "score, y, y_pred, group" in result.stderr
    assert result.stdout == ""
    assert evaluations(server, name, version) == []


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (None, "is empty"),
        ([], "no rows"),
        ([["1", "0", "a"], ["2", "1", "a"]], "line 3: column 'y' holds '2'"),
        ([["1", "0", "a"], ["1", "", "b"]], "line 3: column 'y_pred' is empty"),
    ],
    ids=["no header", "no rows", "not binary", "a blank value"],
)
def test_a_file_that_cannot_give_counts_exits_1_saying_why(
    server: str, tmp_path: Path, rows: list[list[str]] | None, message: str
) -> None:
    name, version = new_version(server)
    path = tmp_path / "predictions.csv"
    if rows is None:
        path.write_text("")
    else:
        write_csv(path, ["y", "y_pred", "group"], rows)

    result = registrar(
        server,
        *("evaluate", "fairness", name, str(version), "--predictions", str(path), *COLUMNS),
        cwd=tmp_path,
    )

    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert evaluations(server, name, version) == []


def test_a_third_value_besides_the_positive_label_is_refused(server: str, tmp_path: Path) -> None:
    name, version = new_version(server)
    path = write_csv(
        tmp_path / "predictions.csv",
        ["y", "y_pred", "group"],
        [["yes", "no", "a"], ["no", "no", "a"], ["maybe", "yes", "b"]],
    )

    result = registrar(
        server,
        *("evaluate", "fairness", name, str(version), "--predictions", str(path), *COLUMNS),
        *("--positive-label", "yes"),
        cwd=tmp_path,
    )

    assert result.returncode == 1
    assert "line 4: column 'y' holds 'no' and 'maybe'" in result.stderr


def test_an_unknown_version_exits_1_with_the_servers_reason(server: str, tmp_path: Path) -> None:
    name, _ = new_version(server)
    predictions = random_predictions(tmp_path / "predictions.csv", size=20)

    result = registrar(
        server,
        *("evaluate", "fairness", name, "99", "--predictions", str(predictions), *COLUMNS),
        cwd=tmp_path,
    )

    assert result.returncode == 1 and "404" in result.stderr and "99" in result.stderr


def test_a_missing_option_is_a_usage_error(tmp_path: Path) -> None:
    result = registrar(
        "http://127.0.0.1:9",
        *("evaluate", "fairness", "m", "1", "--predictions", "p.csv", "--label-column", "y"),
        cwd=tmp_path,
    )

    assert result.returncode == 2 and "--prediction-column" in result.stderr
