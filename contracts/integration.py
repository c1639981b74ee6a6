"""Integration messages for other systems: the promotions deployment systems follow on
`registry.promotions`. Their shape is a promise to those systems; change it only additively."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from registrar.contracts.policies import Rollback, TransitionAuthorization
from registrar.contracts.values import Frozen, Stage


class Approval(Frozen):
    """Someone whose approval counted toward the transition (under a promotion policy)."""

    actor: str
    at: datetime
    comment: str = ""


class Artifact(Frozen):
    """What to deploy: where the version's model is and the digest to check it against."""

    uri: str
    digest: str = Field(description='e.g. "sha256:...", empty if the version was given none')


class Promotion(Frozen):
    """One stage change, alias move or alias removal of a model version, for deployment systems.

    Delivered at least once: a redelivered promotion carries the same `message_id`, so a
    deployment system deduplicates on it (or deploys idempotently)."""

    message_id: UUID = Field(description="Stable: the same on every redelivery of this promotion")
    model: str = Field(description="The model's name when the promotion happened")
    version: str = Field(description='The version number, as a string: "3"')
    kind: Literal["stage", "alias", "alias_removed"] = Field(
        description='"alias_removed": the alias no longer points to `version` (nor to any)'
    )
    from_stage: Stage = Field(description="For an alias move or removal: the version's stage")
    to_stage: Stage = Field(description="For an alias move or removal: the version's stage")
    alias: str | None = Field(
        default=None, description="The alias moved or removed (kinds alias*), else null"
    )
    artifact: Artifact
    actor: str = Field(description="Who made the change")
    approvals: list[Approval] = Field(default_factory=list)
    authorization: TransitionAuthorization | None = Field(
        default=None,
        description="For a move under a promotion policy: the request, policy version, scope,"
        " every gate with the value it saw, and the approvals",
    )
    rollback: Rollback | None = Field(
        default=None,
        description="For a rollback: the reason, and the versions it went back from and to",
    )
    position: int = Field(description="The global position of the event that made the change")
    occurred_at: datetime = Field(description="When the change was recorded (UTC)")
