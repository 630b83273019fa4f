"""``/sse`` over a raw socket, as EventSource sees it: query format, events, CORS, refusals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import quote

import pytest

from tidings.protocol.channels import project_channel
from tidings.protocol.errors import BadRequest, CloseCode, Unauthorized
from tidings.protocol.poke import Poke, encode_poke
from tidings.push.http import Request
from tidings.push.sse import parse_query
from tidings.testing.clients import RawSse

from .conftest import StartServer, token


def query(tok: str, **held: int) -> str:
    return "&".join([f"token={quote(tok)}", *(f"p={p[1:]}:{v}" for p, v in held.items())])


def req(q: str) -> Request:
    return Request("GET", "/sse", q, {}, b"", "127.0.0.1")


def test_query_holds_the_token_and_project_versions() -> None:
    assert parse_query(req("token=abc&p=7:42&p=9:0")) == ("abc", {7: 42, 9: 0})


@pytest.mark.parametrize(
    ("q", "error"),
    [
        ("p=7:42", Unauthorized),
        ("token=a&token=b", BadRequest),
        ("token=a&p=7", BadRequest),
        ("token=a&p=0:1", BadRequest),
        ("token=a&p=x:1", BadRequest),
        ("token=a&p=7:-1", BadRequest),
        ("token=a&" + "&".join(["p=1:1"] * 2000), BadRequest),
    ],
)
def test_malformed_queries_are_refused(q: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_query(req(q))


async def test_events_carry_the_same_json_as_websocket(start_server: StartServer) -> None:
    server, broker = await start_server(sse_retry=2.5)
    sse = await RawSse.connect(server.port, query(token(), p7=1))
    assert sse.status == 200
    assert sse.headers["content-type"] == "text/event-stream"
    hello = await sse.event()
    assert sse.retry == 2500
    assert hello["type"] == "subscribed" and hello["projects"] == {"7": 1}
    await broker.publish(project_channel(9), encode_poke(Poke(9, 5, time.time())))
    await broker.publish(project_channel(7), encode_poke(Poke(7, 2, time.time())))
    poke = await sse.event()
    assert (poke["type"], poke["project"], poke["version"]) == ("poke", 7, 2)
    sse.close()


async def test_a_stream_is_poked_at_once_when_behind_a_known_version(
    start_server: StartServer,
) -> None:
    server, broker = await start_server()
    await broker.set_version(7, 30)
    sse = await RawSse.connect(server.port, query(token(), p7=28))
    assert (await sse.event())["type"] == "subscribed"
    poke = await sse.event()
    assert (poke["project"], poke["version"]) == (7, 30)
    sse.close()


async def test_cors_allows_listed_origins_only(start_server: StartServer) -> None:
    server, _ = await start_server(allowed_origins=("http://localhost:8000",))
    ok = await RawSse.connect(
        server.port, query(token(), p7=1), headers={"Origin": "http://localhost:8000"}
    )
    assert ok.status == 200
    assert ok.headers["access-control-allow-origin"] == "http://localhost:8000"
    ok.close()
    bad = await RawSse.connect(
        server.port, query(token(), p7=1), headers={"Origin": "http://evil.example"}
    )
    assert bad.status == 403
    assert (await bad.body())["error"] == "forbidden"


@pytest.mark.parametrize(
    ("make_query", "status", "error"),
    [
        (lambda: "p=7:1", 401, "unauthorized"),
        (lambda: query(token(), p7=1) + "&p=zz", 400, "bad_request"),
        (lambda: query(token(), p7=1) + "&p=%C2%B2:1", 400, "bad_request"),
    ],
    ids=["missing", "malformed", "unicode-digit"],
)
async def test_query_refusals_are_http_statuses_with_json_bodies(
    start_server: StartServer, make_query: Callable[[], str], status: int, error: str
) -> None:
    server, _ = await start_server()
    sse = await RawSse.connect(server.port, make_query())
    assert sse.status == status
    assert (await sse.body())["error"] == error


async def test_an_expired_token_ends_the_stream_with_a_close_event(
    start_server: StartServer,
) -> None:
    server, _ = await start_server(token_warning=0.5)
    # Valid for 2 more seconds, counting the verifier's 5 s of leeway on exp.
    sse = await RawSse.connect(server.port, query(token(now=time.time() - 3, ttl=0), p7=1))
    assert sse.status == 200
    assert (await sse.event())["type"] == "subscribed"
    warning = await sse.event()
    assert warning["type"] == "token_expiring"
    assert await sse.event() == {
        "type": "close",
        "code": CloseCode.UNAUTHORIZED,
        "reason": "token expired",
    }
    assert await asyncio.wait_for(sse.reader.read(), 5) == b""
