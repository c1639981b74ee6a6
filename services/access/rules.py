"""The access decider: pure functions from what is known to the events a change makes, or a
domain error saying why not. The shell (services/access/administration.py) loads and appends."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from uuid import UUID

from registrar.access.principal import ANONYMOUS
from registrar.contracts.events import (
    AccessEvent,
    OwnershipGranted,
    OwnershipRevoked,
    TokenIssued,
    TokenRevoked,
)
from registrar.contracts.values import Role
from registrar.domain.errors import Conflict, Invalid, NotFound

_USER_NAME = re.compile(r"[A-Za-z0-9_.@+-]{1,128}")
MAX_LABEL_LENGTH = 200


def access_stream(user: str) -> str:
    """The stream of a user's tokens and ownership grants."""
    return f"access:{user}"


def check_user_name(user: str) -> str:
    if not _USER_NAME.fullmatch(user):
        raise Invalid(
            f"user name {user!r}: 1 to 128 letters, digits and _ . @ + - (e.g. an e-mail address)"
        )
    if user == ANONYMOUS:
        raise Invalid(f"{ANONYMOUS!r} is the name of callers without a token: pick another")
    return user


@dataclass(frozen=True, slots=True)
class TokenState:
    role: Role
    label: str
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class AccessState:
    """What one user's access stream says: their tokens."""

    tokens: Mapping[UUID, TokenState] = field(default_factory=dict)


def evolve(state: AccessState, event: AccessEvent) -> AccessState:
    if isinstance(event, TokenIssued):
        return AccessState({**state.tokens, event.token_id: TokenState(event.role, event.label)})
    if isinstance(event, TokenRevoked) and event.token_id in state.tokens:
        revoked = TokenState(state.tokens[event.token_id].role, "", revoked=True)
        return AccessState({**state.tokens, event.token_id: revoked})
    return state


def fold(events: Iterable[AccessEvent], state: AccessState | None = None) -> AccessState:
    state = state or AccessState()
    for event in events:
        state = evolve(state, event)
    return state


def issue_token(user: str, role: Role, label: str, token_id: UUID, token_hash: str) -> TokenIssued:
    check_user_name(user)
    if len(label) > MAX_LABEL_LENGTH:
        raise Invalid(f"label: at most {MAX_LABEL_LENGTH} characters")
    return TokenIssued(token_id=token_id, user=user, role=role, label=label, token_hash=token_hash)


def revoke_token(state: AccessState, user: str, token_id: UUID, reason: str = "") -> TokenRevoked:
    token = state.tokens.get(token_id)
    if token is None:
        raise NotFound(f"{user} has no token {token_id}")
    if token.revoked:
        raise Conflict(f"token {token_id} of {user} is already revoked")
    return TokenRevoked(token_id=token_id, user=user, reason=reason)


def grant_ownership(
    owners: frozenset[str], user: str, model_id: str, model_name: str
) -> OwnershipGranted:
    check_user_name(user)
    if user in owners:
        raise Conflict(f"{user} already owns model {model_name!r}")
    return OwnershipGranted(user=user, model_id=model_id, model_name=model_name)


def revoke_ownership(
    owners: frozenset[str], user: str, model_id: str, model_name: str
) -> OwnershipRevoked:
    if user not in owners:
        raise NotFound(f"{user} does not own model {model_name!r}")
    return OwnershipRevoked(user=user, model_id=model_id, model_name=model_name)
