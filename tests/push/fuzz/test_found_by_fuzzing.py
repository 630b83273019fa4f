"""Inputs the fuzzers found crashing a parser, kept as plain regression tests.

Each once raised a ValueError from ``int()`` (``str.isdigit()`` accepts "²" and
other Unicode digits; ``int()`` refuses them, and refuses any string over 4,300
digits): /ws dropped the socket without a close frame, /sse answered 500.
"""

from __future__ import annotations

import orjson
import pytest

from tidings.protocol.errors import BadMessage, CloseCode
from tidings.protocol.push import parse_client_message
from tidings.testing.clients import RawSse, RawWebSocket

from ..conftest import StartServer, token

BAD_IDS = ["\u00b2", "\u0663", "1" * 5000, "0", "1" * 19]


@pytest.mark.parametrize("key", BAD_IDS)
def test_project_ids_must_be_short_ascii_decimals(key: str) -> None:
    message = orjson.dumps({"type": "subscribe", "token": "t", "projects": {key: 1}})
    with pytest.raises(BadMessage):
        parse_client_message(message)


async def test_a_unicode_digit_project_closes_the_websocket_with_1003(
    start_server: StartServer,
) -> None:
    server, _ = await start_server()
    ws = await RawWebSocket.connect(server.port)
    ws.send_json({"type": "subscribe", "token": token(), "projects": {"\u00b2": 1}})
    assert (await ws.close_code())[0] == CloseCode.UNSUPPORTED_DATA
    assert await ws.eof()


async def test_a_unicode_digit_project_gets_socketio_connect_error(
    start_server: StartServer,
) -> None:
    server, _ = await start_server()
    ws = await RawWebSocket.connect(server.port, path="/socket.io/?EIO=4&transport=websocket")
    assert (await ws.frame())[1].startswith(b"0{")
    ws.send(0x1, b"40" + orjson.dumps({"token": token(), "projects": {"\u00b2": 1}}))
    _op, payload = await ws.frame()
    assert payload.startswith(b'44{"message":'), payload
    ws.close()


@pytest.mark.parametrize("p", ["%C2%B2:1", "7:%D9%A3", "1" * 5000 + ":1", "7:" + "9" * 30])
async def test_bad_sse_project_lists_get_400(start_server: StartServer, p: str) -> None:
    server, _ = await start_server()
    sse = await RawSse.connect(server.port, f"token={token()}&p={p}")
    assert sse.status == 400
    assert (await sse.body())["error"] == "bad_request"
