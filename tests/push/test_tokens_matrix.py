"""Every way a push token can be wrong, on every transport, refused with the documented code.

docs/PROTOCOL.md: a token the server cannot trust is refused with close code
4401 on ``/ws``, ``401`` with ``{"error": "bad_token"}`` on ``/sse``, and on
Socket.IO (no close codes) the event ``close`` carrying 4401, then DISCONNECT
(§2, §4.3, §4.5.2); a good token that does not name a project asked for is
4403 / ``403 forbidden``. (A malformed CONNECT payload, not a bad token, is
what gets Socket.IO's ``connect_error``: tests/push/sio/.)
"""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
import pytest

from tidings.protocol.errors import CloseCode
from tidings.protocol.tokens import AUDIENCE, ISSUER, MAX_TOKEN_BYTES
from tidings.testing.clients import RawSse, RawWebSocket

from .conftest import StartServer, token

K1, K2 = b"a" * 32, b"b" * 32  # the test key ring's secrets (conftest.KEYS)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(**changes: Any) -> dict[str, Any]:
    """Valid claims for user 1 and projects 7 and 9; a change to None drops the claim."""
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "1",
        "prj": [7, 9],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "j",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def _signed(
    claims: dict[str, Any], key: bytes = K1, kid: str | None = "k1", alg: str = "HS256"
) -> str:
    headers = {} if kid is None else {"kid": kid}
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def _alg_none() -> str:
    header = _b64(orjson.dumps({"alg": "none", "typ": "JWT", "kid": "k1"}))
    return f"{header}.{_b64(orjson.dumps(_claims()))}."


def _tampered() -> str:
    """A valid token whose payload now names project 11 too; the signature is kept."""
    header, _, signature = token(projects=[7, 9]).split(".")
    return f"{header}.{_b64(orjson.dumps(_claims(prj=[7, 9, 11])))}.{signature}"


def _bad_json() -> str:
    return f"{_b64(b'{not json')}.{_b64(orjson.dumps(_claims()))}.{_b64(b'sig')}"


@dataclass(frozen=True)
class Case:
    make: Callable[[], str]
    #: Words the refusal's reason (detail) must contain.
    reason: str
    forbidden: bool = False


now = time.time
CASES: dict[str, Case] = {
    "forged-signature": Case(lambda: _signed(_claims(), key=b"z" * 32), "signature"),
    "alg-none": Case(_alg_none, "HS256"),
    "alg-hs512": Case(lambda: _signed(_claims(), key=K1 * 2, alg="HS512"), "HS256"),
    "wrong-kid": Case(lambda: _signed(_claims(), key=K1, kid="k2"), "signature"),
    "unknown-kid": Case(lambda: _signed(_claims(), kid="k9"), "unknown key id"),
    "no-kid": Case(lambda: _signed(_claims(), kid=None), "unknown key id"),
    "expired": Case(lambda: _signed(_claims(exp=int(now()) - 6)), "expired"),
    "not-yet-valid": Case(lambda: _signed(_claims(nbf=int(now()) + 60)), "not yet valid"),
    "other-audience": Case(lambda: _signed(_claims(aud="tidings-admin")), "audience"),
    "other-issuer": Case(lambda: _signed(_claims(iss="someone-else")), "issuer"),
    "tampered-projects": Case(_tampered, "signature"),
    "oversized": Case(lambda: _signed(_claims(jti="x" * MAX_TOKEN_BYTES)), "too large"),
    "malformed-base64": Case(lambda: "eyJ%%%.@@@.***", "malformed"),
    "malformed-json": Case(_bad_json, "malformed"),
    "missing-exp": Case(lambda: _signed(_claims(exp=None)), "exp"),
    "missing-sub": Case(lambda: _signed(_claims(sub=None)), "sub"),
    "missing-prj": Case(lambda: _signed(_claims(prj=None)), "prj"),
    # Validly signed, with claims of the wrong type: refused, never a crash.
    "exp-string": Case(lambda: _signed(_claims(exp=str(int(now()) + 600))), "exp"),
    "exp-infinity": Case(lambda: _signed(_claims(exp=float("inf"))), "exp"),
    "nbf-float": Case(lambda: _signed(_claims(nbf=now() - 1)), "nbf"),
    "iat-string": Case(lambda: _signed(_claims(iat="yesterday")), "iat"),
    "sub-unicode-digit": Case(lambda: _signed(_claims(sub="\u00b2")), "sub"),
    "sub-huge": Case(lambda: _signed(_claims(sub="9" * 5000)), "sub"),
    "project-not-named": Case(lambda: token(projects=[9]), "do", forbidden=True),
}


@dataclass(frozen=True)
class Refusal:
    code: int  # WebSocket close code, or the code in a Socket.IO/SSE close message
    status: int  # SSE's HTTP status (0: not applicable)
    error: str  # SSE's error code
    reason: str


async def _ws(port: int, bad: str) -> Refusal:
    ws = await RawWebSocket.connect(port)
    try:
        ws.send_json({"type": "subscribe", "token": bad, "projects": {"7": 0}})
        code, reason = await ws.close_code()
        assert await ws.eof()
        return Refusal(code, 0, "", reason)
    finally:
        ws.close()


async def _sse(port: int, bad: str) -> Refusal:
    from urllib.parse import quote

    sse = await RawSse.connect(port, f"token={quote(bad)}&p=7:0")
    try:
        body = await sse.body()
        return Refusal(0, sse.status, body["error"], body["detail"])
    finally:
        sse.close()


async def _socketio(port: int, bad: str) -> Refusal:
    ws = await RawWebSocket.connect(port, path="/socket.io/?EIO=4&transport=websocket")
    try:
        assert (await ws.frame())[1].startswith(b"0{")
        ws.send(0x1, b"40" + orjson.dumps({"token": bad, "projects": {"7": 0}}))
        frames = []
        while (frame := await ws.frame())[0] != 0x8:
            frames.append(frame[1])
        assert await ws.eof()
        # CONNECT accepted (the token is the subscription's), then close, then DISCONNECT.
        assert frames[0].startswith(b"40{") and frames[2:] == [b"41"], frames
        assert frames[1].startswith(b'42["close",'), frames
        close = orjson.loads(frames[1][2:])[1]
        return Refusal(close["code"], 0, "", close["reason"])
    finally:
        ws.close()


TRANSPORTS: dict[str, Callable[[int, str], Awaitable[Refusal]]] = {
    "ws": _ws,
    "sse": _sse,
    "socketio": _socketio,
}


@pytest.mark.parametrize("transport", list(TRANSPORTS))
@pytest.mark.parametrize("case", list(CASES))
async def test_bad_tokens_are_refused_with_the_documented_code(
    start_server: StartServer, case: str, transport: str
) -> None:
    server, _ = await start_server()
    spec = CASES[case]
    refusal = await TRANSPORTS[transport](server.port, spec.make())
    if transport == "sse":
        expected = (403, "forbidden") if spec.forbidden else (401, "bad_token")
        assert (refusal.status, refusal.error) == expected, refusal
    else:
        expected_code = CloseCode.FORBIDDEN if spec.forbidden else CloseCode.UNAUTHORIZED
        assert refusal.code == expected_code, refusal
    assert spec.reason.lower() in refusal.reason.lower(), refusal
    assert server.hub.subscribed_projects() == 0
