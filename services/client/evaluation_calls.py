"""The client's evaluation endpoints: record an evaluation of a version (performance, fairness from
per-group counts, explainability, robustness, mitigation, or a custom kind), list a version's
evaluations and read one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from registrar.client.calls import Call, read, segment, write
from registrar.client.model_calls import MODELS
from registrar.contracts.api_answers import EvaluationList, EvaluationOut
from registrar.contracts.evaluations import EvaluationInput


def _evaluations(model: str, version: int) -> str:
    return f"{MODELS}/{segment(model)}/versions/{segment(version)}/evaluations"


def record_evaluation(
    model: str,
    version: int,
    evaluation: EvaluationInput | Mapping[str, Any],
    *,
    idempotency_key: str | UUID | None = None,
) -> Call[EvaluationOut]:
    """Record an evaluation of version `version` of `model` (EvaluationInput, or its fields as a
    mapping: {"kind": "fairness", "sensitive_feature": ..., "groups": {group: {"tp", "fp",
    "tn", "fn"}}, ...}); a fairness one's rates and disparities are derived by the server. The
    answer's `evaluation_id` names it. The same `idempotency_key` (a UUID) again records nothing
    new and answers with the evaluation recorded the first time."""
    body = (
        evaluation.model_dump(mode="json", exclude_none=True)
        if isinstance(evaluation, EvaluationInput)
        else dict(evaluation)
    )
    path = _evaluations(model, version)
    return write("POST", path, EvaluationOut.model_validate, body, idempotency_key)


def evaluations(model: str, version: int) -> Call[list[EvaluationOut]]:
    """Every evaluation of the version, newest first (strongly consistent)."""
    return read(
        _evaluations(model, version), lambda body: EvaluationList.model_validate(body).evaluations
    )


def get_evaluation(model: str, version: int, evaluation_id: str) -> Call[EvaluationOut]:
    """One evaluation of the version, by its id."""
    path = f"{_evaluations(model, version)}/{segment(evaluation_id)}"
    return read(path, EvaluationOut.model_validate)
