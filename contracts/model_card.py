"""Model-card fields of a version: the documentation a regulated team keeps with a model, which
promotion gates can require (`model_card.intended_use`) and a rendered model card shows."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from registrar.contracts.values import Frozen

MAX_CARD_TEXT_LENGTH = 100_000

CardText = Annotated[str, Field(max_length=MAX_CARD_TEXT_LENGTH)]

CARD_FIELDS = (
    "intended_use",
    "limitations",
    "ethical_considerations",
    "training_data_summary",
    "evaluation_summary",
)
"""Every model-card field, in the order a card shows them."""


class ModelCardPatch(Frozen):
    """Model-card fields to change: a field left out (or null) stays as it is, "" clears it."""

    intended_use: CardText | None = None
    limitations: CardText | None = None
    ethical_considerations: CardText | None = None
    training_data_summary: CardText | None = None
    evaluation_summary: CardText | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_free_text_risk(cls, data: Any) -> Any:
        if isinstance(data, dict) and "risk_tier" in data:
            raise ValueError(
                "risk_tier is no longer a card field: assess the model's risk with POST"
                " /v1/models/{name}/risk-assessment (the card shows the assessed tier)"
            )
        return data

    def changes(self) -> dict[str, str]:
        """The fields this patch sets, by name."""
        return {name: value for name in CARD_FIELDS if (value := getattr(self, name)) is not None}
