"""Domain errors: what a caller did that the registry refuses, with a message that says why."""

from __future__ import annotations


class DomainError(Exception):
    """A refused command. `code` is stable for machines; the message is for people."""

    code = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    code = "not_found"


class ModelNotFound(NotFound):
    """No live model holds the name (`name`): never one, deleted, or renamed away."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


class VersionNotFound(NotFound):
    """The model has no live version `version` (never registered, or deleted)."""

    def __init__(self, message: str, name: str, version: int) -> None:
        super().__init__(message)
        self.name = name
        self.version = version


class Conflict(DomainError):
    code = "conflict"


class Invalid(DomainError):
    code = "invalid"


class Unavailable(DomainError):
    """The registry cannot do this now (e.g. a stored file is missing): retrying may help."""

    code = "unavailable"


class Forbidden(DomainError):
    """The caller is known but may not do this (e.g. approve without the policy's role)."""

    code = "forbidden"
