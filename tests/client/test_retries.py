"""The client's own retries, once per flavour: a bounded number of tries with backoff on no answer
(a closed port) and on 503 (an httpx mock transport: a real server answers 503 only after its
query wait runs out), each write retried with its one Idempotency-Key; other statuses raised at
once as the ClientError they are."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from registrar import ClientError, InvalidRequest, Unavailable

from .support import MakeClient, Recorder, done


def closed_port() -> int:
    """A port nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Answering:
    """A mock server answering with `answers` in turn (the last one again when they run out)."""

    def __init__(self, *answers: tuple[int, Any]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self.answer)

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)


MODEL = {
    "id": "0",
    "name": "m",
    "description": "",
    "tags": {},
    "aliases": {},
    "latest_version": 0,
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
    "deleted": False,
}
BUSY = {"error": {"code": "unavailable", "message": "the projection has not caught up"}}


async def test_unavailable_is_raised_after_bounded_retries(
    make_client: MakeClient, recorder: Recorder
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    client = make_client(base_url=url, transport=recorder.transport, retries=2, backoff=0)
    with pytest.raises(Unavailable) as refused:
        await done(client.get_model("m"))
    assert refused.value.status is None and url in refused.value.message
    assert len(recorder.requests) == 3  # the first try and two retries


async def test_a_write_is_retried_with_its_one_idempotency_key(
    make_client: MakeClient, recorder: Recorder
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    client = make_client(base_url=url, transport=recorder.transport, retries=1, backoff=0)
    with pytest.raises(Unavailable):
        await done(client.create_model("m"))
    keys = [r.headers["Idempotency-Key"] for r in recorder.requests]
    assert len(keys) == 2 and keys[0] == keys[1]


async def test_no_retries_means_one_try(make_client: MakeClient, recorder: Recorder) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    client = make_client(base_url=url, transport=recorder.transport, retries=0)
    with pytest.raises(Unavailable):
        await done(client.get_model("m"))
    assert len(recorder.requests) == 1


async def test_a_503_is_retried_then_raised_as_unavailable_with_the_servers_message(
    make_client: MakeClient,
) -> None:
    server = Answering((503, BUSY))
    client = make_client(base_url="http://registrar", transport=server.transport, backoff=0)
    with pytest.raises(Unavailable) as refused:
        await done(client.get_model("m"))
    assert refused.value.status == 503 and refused.value.code == "unavailable"
    assert refused.value.message == "the projection has not caught up"
    assert len(server.requests) == 4  # retries=3 by default


async def test_an_answer_after_a_503_is_the_result(make_client: MakeClient) -> None:
    server = Answering((503, BUSY), (200, MODEL))
    client = make_client(base_url="http://registrar", transport=server.transport, backoff=0)
    assert (await done(client.get_model("m"))).name == "m"
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (400, {"error": {"code": "bad", "message": "malformed"}}, InvalidRequest, "malformed"),
        (500, "Internal Server Error", ClientError, "Internal Server Error"),
        (502, "<html>bad gateway</html>", ClientError, "<html>bad gateway</html>"),
    ],
)
async def test_other_refusals_are_raised_at_once(
    make_client: MakeClient, status: int, body: Any, kind: type[ClientError], message: str
) -> None:
    server = Answering((status, body))
    client = make_client(base_url="http://registrar", transport=server.transport, backoff=0)
    with pytest.raises(ClientError) as refused:
        await done(client.get_model("m"))
    assert type(refused.value) is kind
    assert (refused.value.status, refused.value.message) == (status, message)
    assert len(server.requests) == 1
