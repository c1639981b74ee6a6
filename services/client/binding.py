"""One surface, two flavours: each endpoint is written once, as a function building its `Call`
(or `Paged`), and placed on the shared surface class as `endpoint(build)` (or `listing(build)`).

These are descriptors. Read from a `Client` (a SyncSession) the attribute is a method taking
`build`'s arguments that sends the call and returns its result; read from an `AsyncClient` (an
AsyncSession) it is a coroutine method returning the same. A listing gives an Iterator or an
AsyncIterator of every item, page after page. The `@overload`ed `__get__`s let a type checker see
exactly that: `Client().get_model("x")` is a ModelOut, `AsyncClient().get_model("x")` a coroutine
of one, both with `build`'s signature (ParamSpec)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Generic, ParamSpec, TypeVar, overload

from registrar.client.calls import Call, Paged
from registrar.client.sessions import AsyncSession, SyncSession

P = ParamSpec("P")
T = TypeVar("T")


class endpoint(Generic[P, T]):
    """A request-response endpoint of the surface."""

    def __init__(self, build: Callable[P, Call[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, session: None, owner: type[Any]) -> endpoint[P, T]: ...

    @overload
    def __get__(self, session: SyncSession, owner: type[Any]) -> Callable[P, T]: ...

    @overload
    def __get__(
        self, session: AsyncSession, owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, session: SyncSession | AsyncSession | None, owner: type[Any]) -> Any:
        if session is None:
            return self
        build = self.build
        if isinstance(session, AsyncSession):
            sender = session

            @functools.wraps(build)
            async def call_async(*args: P.args, **kwargs: P.kwargs) -> T:
                return await sender.send(build(*args, **kwargs))

            return call_async

        @functools.wraps(build)
        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            return session.send(build(*args, **kwargs))

        return call


class listing(Generic[P, T]):
    """A list endpoint of the surface: its items, every page of them, as they are read."""

    def __init__(self, build: Callable[P, Paged[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, session: None, owner: type[Any]) -> listing[P, T]: ...

    @overload
    def __get__(self, session: SyncSession, owner: type[Any]) -> Callable[P, Iterator[T]]: ...

    @overload
    def __get__(self, session: AsyncSession, owner: type[Any]) -> Callable[P, AsyncIterator[T]]: ...

    def __get__(self, session: SyncSession | AsyncSession | None, owner: type[Any]) -> Any:
        if session is None:
            return self
        build = self.build
        if isinstance(session, AsyncSession):
            sender = session

            @functools.wraps(build)
            def items_async(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
                return sender.pages(build(*args, **kwargs))

            return items_async

        @functools.wraps(build)
        def items(*args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
            return session.pages(build(*args, **kwargs))

        return items
