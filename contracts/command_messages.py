"""Commands over Kafka: a command with its ids on `registry.commands`, and its one result on
`registry.command-results` (key = command id). The commands are the same contracts as HTTP."""

from __future__ import annotations

from typing import Annotated, Self
from uuid import UUID

from pydantic import Field, model_validator

from registrar.contracts.commands import Command
from registrar.contracts.values import Frozen, Inbound

AUTHORIZATION_HEADER = "authorization"
"""The Kafka header a command message carries its bearer token in (`Bearer <token>`), as an HTTP
request does. Required when authentication is on: the command then runs as the token's user and
role, whatever `actor` says, and a message without a valid token is dead-lettered."""


class CommandMessage(Inbound):
    command_id: UUID = Field(
        description="Chosen by the sender, unique per command: a resent command with the same id"
        " changes nothing twice and gets no second result"
    )
    actor: Annotated[str, Field(min_length=1, max_length=256)] = Field(
        description="Who is acting; recorded on every event. With authentication on, the user"
        " of the token in the `authorization` header is recorded instead"
    )
    correlation_id: UUID | None = Field(
        default=None, description="Copied onto the events (defaults to the command id)"
    )
    command: Command

    @model_validator(mode="after")
    def _not_a_seal(self) -> Self:
        if self.command.type == "SealArtifacts":
            raise ValueError(
                "SealArtifacts is not taken from the bus: the artifact store seals a version"
                " itself from the files uploaded to it (POST .../artifacts/seal)"
            )
        return self


class CommandError(Frozen):
    """Why a command was refused: `code` is stable for machines, `message` says what to do."""

    code: str = Field(description='"invalid", "not_found" or "conflict"')
    message: str


class CommandResult(Frozen):
    command_id: UUID
    ok: bool
    positions: list[int] = Field(
        default_factory=list,
        description="Global positions of the events the command wrote (none if it changed nothing)",
    )
    error: CommandError | None = None

    @model_validator(mode="after")
    def _error_iff_refused(self) -> Self:
        if self.ok == (self.error is not None):
            raise ValueError("a result is either ok (no error) or refused (with an error)")
        return self
