"""Reading a request's whole body in an ASGI middleware, and handing the app a `receive` that
gives it the same bytes again: the body size limit and access control (which looks for the
model's name in an MLflow request's body) both read it before the handler does."""

from __future__ import annotations

from starlette.types import Message, Receive


class TooLarge(Exception):
    """The body holds more bytes than the reader would take."""


async def read_body(receive: Receive, max_bytes: int | None = None) -> bytes:
    """Every chunk of the body, joined; TooLarge as soon as it passes `max_bytes`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""  # the client went away
        chunk = message.get("body", b"")
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise TooLarge(size)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` first, then whatever `receive` gives (a disconnect)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
