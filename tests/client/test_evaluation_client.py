"""The client's evaluation methods against a running Registrar, each test once per flavour (Client,
AsyncClient): record a fairness evaluation and read its derived figures, list a version's
evaluations newest first, read one, a malformed body raised as InvalidRequest, and a retried
Idempotency-Key recording one evaluation."""

from __future__ import annotations

import uuid

import pytest

from registrar import InvalidRequest, NotFound
from registrar.contracts.evaluations import EvaluationInput
from registrar.contracts.values import DatasetInput

from .support import AnyClient, done, unique

BIASED = {
    "F": {"tp": 30, "fp": 10, "tn": 50, "fn": 10},
    "M": {"tp": 40, "fp": 20, "tn": 30, "fn": 10},
}


def selection_rate(counts: dict[str, int]) -> float:
    return (counts["tp"] + counts["fp"]) / sum(counts.values())


def fairness(groups: dict[str, dict[str, int]]) -> EvaluationInput:
    return EvaluationInput(
        kind="fairness",
        sensitive_feature="sex",
        groups=groups,
        dataset=DatasetInput(name="holdout", version="2026-11"),
        tools={"fairlearn": "0.13"},
    )


async def new_version(client: AnyClient) -> str:
    name = unique("credit")
    await done(client.create_model(name))
    await done(client.register_version(name, f"s3://models/{name}/1"))
    return name


async def test_a_fairness_evaluation_is_recorded_with_its_derived_figures(
    client: AnyClient,
) -> None:
    name = await new_version(client)
    position_before = client.position

    recorded = await done(client.record_evaluation(name, 1, fairness(BIASED)))

    assert (recorded.model, recorded.version, recorded.kind) == (name, 1, "fairness")
    assert recorded.evaluation_id and recorded.position is not None
    assert client.position == recorded.position > position_before  # a write: it advances
    rates = [selection_rate(counts) for counts in BIASED.values()]
    assert recorded.fairness is not None
    assert recorded.fairness.demographic_parity_difference == pytest.approx(max(rates) - min(rates))
    assert recorded.groups["F"]["selection_rate"] == pytest.approx(selection_rate(BIASED["F"]))
    assert recorded.dataset is not None and recorded.dataset.name == "holdout"


async def test_evaluations_are_listed_newest_first_and_read_one_by_one(
    client: AnyClient,
) -> None:
    name = await new_version(client)
    first = await done(client.record_evaluation(name, 1, fairness(BIASED)))
    second = await done(
        client.record_evaluation(name, 1, {"kind": "performance", "metrics": {"auc": 0.91}})
    )

    listed = await done(client.evaluations(name, 1))

    assert [e.evaluation_id for e in listed] == [second.evaluation_id, first.evaluation_id]
    assert listed[0].metrics == {"auc": 0.91}
    one = await done(client.get_evaluation(name, 1, first.evaluation_id))
    assert one.evaluation_id == first.evaluation_id and one.fairness == first.fairness
    assert await done(client.evaluations(name, 1)) == listed  # reading changes nothing
    with pytest.raises(NotFound, match="no-such-evaluation"):
        await done(client.get_evaluation(name, 1, "no-such-evaluation"))


async def test_a_malformed_fairness_body_raises_invalid_request(client: AnyClient) -> None:
    name = await new_version(client)
    malformed = {"kind": "fairness", "sensitive_feature": "sex", "groups": {"F": {"tp": 3}}}

    with pytest.raises(InvalidRequest) as refused:
        await done(client.record_evaluation(name, 1, malformed))

    assert refused.value.status == 422
    assert "tp, fp, tn, fn" in refused.value.message
    assert await done(client.evaluations(name, 1)) == []


async def test_the_same_idempotency_key_records_one_evaluation(client: AnyClient) -> None:
    name = await new_version(client)
    key = uuid.uuid4()

    first = await done(client.record_evaluation(name, 1, fairness(BIASED), idempotency_key=key))
    again = await done(client.record_evaluation(name, 1, fairness(BIASED), idempotency_key=key))

    assert again.evaluation_id == first.evaluation_id
    assert [e.evaluation_id for e in await done(client.evaluations(name, 1))] == [
        first.evaluation_id
    ]
