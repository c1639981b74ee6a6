"""The model card as a document: the answer of GET /v1/models/{name}/versions/{v}/card (JSON), and
the structure its Markdown and HTML renderings are made from. Sections come in a fixed order (the
model-card headings of Mitchell et al., then Registrar's risk, compliance and approvals); each is
present even when nothing is recorded for it, saying so in `note`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from registrar.contracts.api import Answer

CARD_SECTIONS = (
    ("model_details", "Model Details"),
    ("intended_use", "Intended Use"),
    ("factors", "Factors"),
    ("metrics", "Metrics"),
    ("evaluation_data", "Evaluation Data"),
    ("training_data", "Training Data"),
    ("quantitative_analyses", "Quantitative Analyses"),
    ("explainability", "Explainability"),
    ("ethical_considerations", "Ethical Considerations"),
    ("caveats", "Caveats and Recommendations"),
    ("risk", "Risk"),
    ("compliance", "Compliance"),
    ("approvals", "Approvals"),
)
"""(id, title) of every section, in the order a card shows them."""

NOT_RECORDED = "Not recorded."

Value = str | int | float | bool | None
"""A fact or a table cell: numbers stay numbers, times are RFC 3339 text, null is not recorded."""


class Fact(Answer):
    label: str
    value: Value = None


class FactsBlock(Answer):
    """Labelled values (a definition list)."""

    kind: Literal["facts"] = "facts"
    caption: str = ""
    facts: list[Fact]


class TextBlock(Answer):
    """Free text as written (a model-card field); renderings escape it."""

    kind: Literal["text"] = "text"
    caption: str = ""
    text: str


class TableBlock(Answer):
    kind: Literal["table"] = "table"
    caption: str = ""
    columns: list[str]
    rows: list[list[Value]]


Block = Annotated[FactsBlock | TextBlock | TableBlock, Field(discriminator="kind")]


class CardSection(Answer):
    id: str = Field(description=", ".join(section_id for section_id, _ in CARD_SECTIONS))
    title: str
    blocks: list[Block] = Field(default_factory=list)
    note: str = Field(default="", description=f'"{NOT_RECORDED}" when the section has no blocks')


class ModelCardDocument(Answer):
    """A version's model card as it stood at `as_of`: every section, in order."""

    model: str
    version: int
    title: str
    as_of: datetime
    policy_version: int = Field(description="The governance document in force at `as_of`")
    sections: list[CardSection]
