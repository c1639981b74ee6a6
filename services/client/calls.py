"""Requests described, not sent: a `Call` is one HTTP request of the API and how to read its
answer; a `Paged` is a list endpoint read page by page. The endpoint modules build them; the
sessions (registrar.client.sessions) send them, synchronously or not."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import quote
from uuid import UUID

from registrar.contracts.identifiers import uuid7

T = TypeVar("T")

Scalar = str | int | float | bool
Query = tuple[tuple[str, Scalar], ...]


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request: `parse` turns the decoded JSON answer into the method's result.

    `projected`: answered from a read model, so the client sends `min_position` (its last write)
    to read its own writes. `advances`: a write to a model's stream, whose answer's position the
    client remembers for that. `text`: the answer is text, not JSON (a rendered document): `parse`
    is given it as a str. A GET, or a write with an Idempotency-Key, is safe to retry."""

    method: str
    path: str
    parse: Callable[[Any], T]
    query: Query = ()
    body: Any = None
    idempotency_key: str | None = None
    projected: bool = False
    advances: bool = False
    text: bool = False

    @property
    def retry_safe(self) -> bool:
        return self.method == "GET" or self.idempotency_key is not None


Page = tuple[list[T], str | None]
"""One page's items and the token of the next page (None: it was the last)."""


@dataclass(frozen=True, slots=True)
class Paged(Generic[T]):
    """A list endpoint: `first` asks for the first page; each next page is the same request with
    the previous answer's `next_page_token`."""

    first: Call[Page[T]]

    def page(self, token: str | None) -> Call[Page[T]]:
        if token is None:
            return self.first
        return replace(self.first, query=(*self.first.query, ("page_token", token)))


class _PageBody(Protocol):
    next_page_token: str | None


PageBody = TypeVar("PageBody", bound=_PageBody)


def read(path: str, parse: Callable[[Any], T], query: Query = ()) -> Call[T]:
    """A GET answered from the streams themselves: strongly consistent, nothing to wait for."""
    return Call("GET", path, parse, query)


def query_read(path: str, parse: Callable[[Any], T], query: Query = ()) -> Call[T]:
    """A GET answered from a read model (a list, a search, lineage, audit, history)."""
    return Call("GET", path, parse, query, projected=True)


def paged(
    path: str,
    page: Callable[[Any], PageBody],
    items: Callable[[PageBody], list[T]],
    query: Query = (),
) -> Paged[T]:
    """A list endpoint whose answer `page` parses, and `items` picks the page's items from."""

    def parse(body: Any) -> Page[T]:
        parsed = page(body)
        return items(parsed), parsed.next_page_token

    return Paged(query_read(path, parse, query))


def write(
    method: str,
    path: str,
    parse: Callable[[Any], T],
    body: Any = None,
    idempotency_key: str | UUID | None = None,
    *,
    advances: bool = True,
) -> Call[T]:
    """A command. It always carries an Idempotency-Key (the caller's, or a fresh one), so that
    the client may retry it after a lost answer: the server applies one key once."""
    key = str(idempotency_key) if idempotency_key is not None else str(uuid7())
    return Call(method, path, parse, body=body, idempotency_key=key, advances=advances)


def segment(value: str | int) -> str:
    """A path segment: names may hold characters that mean something in a URL (?, #, %)."""
    return quote(str(value), safe="")


def query(**params: Scalar | Sequence[Scalar] | None) -> Query:
    """Query parameters without the ones left out (None); a sequence repeats its parameter."""
    pairs: list[tuple[str, Scalar]] = []
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, Sequence) and not isinstance(value, str):
            pairs.extend((name, item) for item in value)
        else:
            pairs.append((name, value))
    return tuple(pairs)


def tag_filters(tags: Mapping[str, str] | None) -> list[str] | None:
    """`tag=key=value` filters (all must match)."""
    return [f"{key}={value}" for key, value in tags.items()] if tags else None


def instant(when: datetime | str | None) -> str | None:
    """An RFC 3339 instant for the API; a datetime without a zone is UTC, as in Registrar."""
    if when is None or isinstance(when, str):
        return when
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).isoformat()


def fields(**values: Any) -> dict[str, Any]:
    """A JSON body of the fields given (None: left out, so the server's default applies)."""
    return {name: value for name, value in values.items() if value is not None}
