"""The push transports' parsers fed malformed input directly, 10,000 inputs each (no sockets).

Every input must end in a defined outcome: a parsed value that obeys the
protocol's bounds, or a refusal the transport knows how to send (a
``TidingsError``, a ``FrameError`` close code, an Engine.IO error answer, an HTTP
4xx); never another exception, a 5xx, or leaked connection state.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tidings.protocol.errors import BadMessage, BadToken, CloseCode, TidingsError
from tidings.protocol.push import MAX_DECIMAL_DIGITS, parse_client_message
from tidings.protocol.tokens import verify_push_token
from tidings.push.http import HttpConnection, Request
from tidings.push.sio.engineio import Closed, EngineConfig, ErrorCode, Output, ProtocolError
from tidings.push.sio.session import Connected, InvalidEvent, Refresh, SocketIOServer, Subscribe
from tidings.push.sio.socketio import (
    MAX_ACK_ID_DIGITS,
    MAX_NAMESPACE_LENGTH,
    PacketType,
    decode_packet,
)
from tidings.push.sse import parse_query
from tidings.push.wsframe import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameBudget,
    FrameError,
    FrameReader,
    OverBudget,
    parse_close,
)

from ..conftest import KEYS, StartServer
from . import strategies as s


def fuzz(strategy: Any, total: int = s.PARSER_INPUTS) -> Callable[[Callable[..., None]], Any]:
    """Run the decorated check on ``total`` inputs (in batches); count what ran."""

    def wrap(check: Callable[[bytes | str], None]) -> Any:
        ran = [0]

        @settings(
            max_examples=s.budget(total),
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(s.batches(strategy))
        def run(batch: list[Any]) -> None:
            for item in batch:
                check(item)
                ran[0] += 1

        def test() -> int:
            run()
            assert ran[0] >= total, f"only {ran[0]} of {total} inputs ran"
            return ran[0]

        return test

    return wrap


# -- WebSocket frames ----------------------------------------------------------------

_MAX = 256
_FRAME_CODES = {CloseCode.PROTOCOL_ERROR, CloseCode.INVALID_PAYLOAD, CloseCode.TOO_BIG}


def _read(chunks: list[bytes]) -> tuple[list[tuple[int, bytes]], int | None]:
    reader = FrameReader(_MAX)
    out: list[tuple[int, bytes]] = []
    try:
        for chunk in chunks:
            if out and out[-1][0] == OP_CLOSE:
                break  # as WebSocketProtocol does: nothing after a close frame is read
            out += reader.feed(chunk)
    except FrameError as exc:
        assert exc.code in _FRAME_CODES, exc.code
        return out, exc.code
    return out, None


def test_frame_reader_refuses_bad_frames_with_a_close_code_whatever_the_chunking() -> None:
    @fuzz(s.ws_inputs)
    def check(data: bytes) -> None:
        whole, error = _read([data])
        cut = len(data) // 3
        split, split_error = _read([data[:cut], data[cut:]])
        assert error == split_error
        if error is None:
            assert whole == split
        for op, payload in whole:
            assert op in (OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG)
            assert len(payload) <= (125 if op >= OP_CLOSE else _MAX)
            if op == OP_TEXT:
                payload.decode()
            if op == OP_CLOSE:
                try:
                    code, _ = parse_close(payload)
                except FrameError as exc:
                    assert exc.code in _FRAME_CODES
                else:
                    assert code == 1005 or 1000 <= code <= 4999

    check()


def test_a_hostile_frame_sequence_meets_the_fragment_and_frame_bounds() -> None:
    """Whatever the frames and however they are cut into reads: a read within its
    allowance is parsed exactly as without one; one past it stops at the frame
    past it (OverBudget); no message comes from more than ``max_fragments`` frames."""
    fragments = 4

    @fuzz(s.ws_hostile_sequences, total=max(1, s.PARSER_INPUTS // 10))
    def check(case: tuple[list[bytes], list[int], int]) -> None:
        frames, cuts, allowance = case
        data = b"".join(frames)
        bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
        free, held = FrameReader(_MAX, fragments), FrameReader(_MAX, fragments)
        for start, end in itertools.pairwise(bounds):
            chunk = data[start:end]
            free_error: FrameError | None = None
            try:
                expected = free.feed(chunk)
            except FrameError as exc:
                free_error = exc
            try:
                got = held.feed(chunk, allowance)
            except OverBudget:
                assert free_error is not None or free.spent > allowance
                return
            except FrameError as exc:
                assert free_error is not None and exc.code == free_error.code
                assert exc.code in _FRAME_CODES
                return
            assert free_error is None and free.spent <= allowance
            assert got == expected and held.spent == free.spent
        # No error: every message came in at most ``fragments`` frames.
        opened = 0
        for frame in frames:
            op, fin = frame[0] & 0x0F, frame[0] & 0x80
            if op in (OP_TEXT, 0x0):
                opened += 1
                assert opened <= fragments
                if fin:
                    opened = 0

    check()


def test_a_frame_budget_never_allows_more_than_its_burst_plus_its_rate() -> None:
    """Over any stretch of time, frames taken <= burst + rate x its length (+1 for
    the frame that straddles the start)."""

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.integers(1, 40),
        st.floats(0.05, 20),
        st.lists(st.tuples(st.floats(0, 3), st.integers(0, 50)), max_size=60),
    )
    def run(burst: int, rate: float, steps: list[tuple[float, int]]) -> None:
        budget = FrameBudget(burst, rate)
        full_at, now = 0.0, 1000.0
        taken: list[tuple[float, int]] = []
        for dt, want in steps:
            now += dt
            allowed = budget.allowance(full_at, now)
            assert 0 <= allowed <= burst
            n = min(want, allowed)
            full_at = budget.spend(full_at, now, n)
            taken.append((now, n))
        for i, (t0, _) in enumerate(taken):
            for t1, _ in taken[i:]:
                inside = sum(n for t, n in taken if t0 <= t <= t1)
                assert inside <= burst + rate * (t1 - t0) + 1e-6, (t0, t1, inside)

    run()


# -- HTTP requests and the WebSocket handshake ----------------------------------------


class _Transport(asyncio.Transport):
    """Collects what the server writes; no socket."""

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = False
        self.protocol: asyncio.BaseProtocol | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.out += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


#: What the push server may answer to a malformed request (docs/PROTOCOL.md 4.3, 4.5.2).
_HTTP_STATUSES = {101, 200, 204, 400, 401, 403, 404, 408, 413, 426, 431}


async def test_http_parser_answers_malformed_requests_with_4xx_and_leaks_nothing(
    start_server: StartServer,
) -> None:
    server, _ = await start_server(ip_rate=0, handshake_timeout=0.2)
    ctx = server.context
    sockets, conns = ctx.sockets, len(server.hub)
    statuses: dict[int, int] = {}

    @fuzz(s.http_inputs)
    def check(data: bytes) -> None:
        transport = _Transport()
        conn = HttpConnection(ctx)
        transport.protocol = conn
        conn.connection_made(transport)
        conn.data_received(data)
        if not transport.out and not transport.closed:
            conn._expired()  # the head timer firing: 408 for a partial head
        if transport.out:
            head = bytes(transport.out).split(b"\r\n\r\n", 1)
            status = int(head[0][9:12])
            assert status in _HTTP_STATUSES, head[0]
            statuses[status] = statuses.get(status, 0) + 1
            if 400 <= status < 500 and b"application/json" in head[0]:
                body = orjson.loads(head[1])
                assert isinstance(body, dict) and ("error" in body or "code" in body), body
        protocol = transport.protocol
        assert isinstance(protocol, asyncio.Protocol)
        protocol.connection_lost(None)
        assert ctx.sockets == sockets, "a socket was counted and never released"
        assert len(server.hub) == conns, "a hub connection outlived its socket"

    check()
    # The grammar reaches past the parser: upgrades, routes and refusals all ran.
    assert {101, 400, 404} <= set(statuses), statuses


# -- SSE query strings --------------------------------------------------------------


def test_sse_query_parser_refuses_with_tidings_errors() -> None:
    @fuzz(s.sse_queries)
    def check(query: str) -> None:
        request = Request("GET", "/sse", query, {}, b"", "127.0.0.1")
        try:
            token, projects = parse_query(request)
        except TidingsError as exc:
            assert exc.status in (400, 401), exc
            return
        assert token
        for project, version in projects.items():
            assert 0 < project < 10**MAX_DECIMAL_DIGITS and 0 <= version < 10**MAX_DECIMAL_DIGITS
        with contextlib.suppress(BadToken):
            verify_push_token(KEYS, token, now=0.0)

    check()


# -- Client messages and tokens ------------------------------------------------------


def test_client_message_parser_refuses_with_bad_message() -> None:
    @fuzz(s.client_messages)
    def check(data: bytes) -> None:
        try:
            _, token, projects = parse_client_message(data)
        except BadMessage as exc:
            assert exc.close_code == CloseCode.UNSUPPORTED_DATA
            return
        assert isinstance(token, str) and token
        assert all(p > 0 and type(v) is int and v >= 0 for p, v in projects.items())
        orjson.dumps({str(p): v for p, v in projects.items()})  # fits the wire again

    check()


def test_token_verifier_refuses_garbage_with_bad_token() -> None:
    @fuzz(s.tokens)
    def check(token: str) -> None:
        try:
            verify_push_token(KEYS, token)
        except BadToken as exc:
            assert exc.close_code == CloseCode.UNAUTHORIZED
        else:
            raise AssertionError(f"garbage verified: {token!r}")

    check()


# -- Socket.IO and Engine.IO --------------------------------------------------------


def test_socketio_packet_decoder_refuses_with_protocol_error() -> None:
    @fuzz(s.sio_packets)
    def check(text: str) -> None:
        try:
            packet = decode_packet(text)
        except ProtocolError:
            return
        assert packet.nsp.startswith("/") and len(packet.nsp) <= MAX_NAMESPACE_LENGTH
        assert packet.id is None or 0 <= packet.id < 10**MAX_ACK_ID_DIGITS
        if packet.type is PacketType.EVENT:
            assert isinstance(packet.data, list) and packet.data

    check()


_EVENTS = (Connected, Subscribe, Refresh, InvalidEvent, Closed)


def _check_output(out: Output) -> None:
    for response in (out.response, out.poll):
        if response is None:
            continue
        assert response.status in (200, 400, 403, 413), response
        if response.status in (400, 403) and response.body[:1] == b"{":
            assert orjson.loads(response.body)["code"] in set(ErrorCode)
    assert all(isinstance(event, _EVENTS) for event in out.events), out.events


def _drain(server: SocketIOServer) -> None:
    """End every session and run the clocks past every timeout: nothing may remain."""
    for _session, out in server.end_all("test over", 0.0):
        _check_output(out)
    for _session, out in server.tick(1e9):
        _check_output(out)
    assert not server.sessions, "a session outlived its timeouts"


def test_engineio_polling_bodies_end_in_a_refusal_or_are_handled() -> None:
    server = SocketIOServer(EngineConfig(max_sessions=1_000_000))

    @fuzz(s.eio_bodies)
    def check(body: bytes) -> None:
        session, out = server.handle_http("GET", "EIO=4&transport=polling", b"", 0.0)
        assert session is not None
        query = f"EIO=4&transport=polling&sid={session.sid}"
        session, out = server.handle_http("POST", query, body, 0.0)
        _check_output(out)
        assert out.response is not None
        closed = any(isinstance(e, Closed) for e in out.events)
        if out.response.status != 200:
            assert closed, "a refused body must end the session"
        # The session's next GET: answered at once, held, or refused as unknown.
        _, out = server.handle_http("GET", query, b"", 0.0)
        _check_output(out)
        assert out.hold or out.response is not None
        assert session is not None
        session.end("done", 0.0)

    check()
    _drain(server)


def test_engineio_requests_with_bad_queries_and_methods_are_refused() -> None:
    server = SocketIOServer(EngineConfig(max_sessions=1_000_000))

    @fuzz(s.eio_queries)
    def check(query: str) -> None:
        for method in ("GET", "POST", "PUT"):
            _, out = server.handle_http(method, query, b"40", 0.0)
            _check_output(out)
            assert out.hold or out.response is not None
        _, out = server.handle_websocket(query, 0.0)
        _check_output(out)

    check()
    _drain(server)


def test_socketio_over_websocket_ends_bad_sessions_with_a_close() -> None:
    server = SocketIOServer(EngineConfig(max_sessions=1_000_000))

    @fuzz(s.eio_packets)
    def check(packet: str) -> None:
        session, out = server.handle_websocket("EIO=4&transport=websocket", 0.0)
        assert session is not None
        session.receive_ws("40", 0.0)
        for data in (packet, packet.encode("utf-8", "surrogatepass")):
            if session.closed:
                break
            out = session.receive_ws(data, 0.0)
            _check_output(out)
            if any(isinstance(e, Closed) for e in out.events):
                assert out.close_websocket, "a session ended without closing its socket"
                assert session.closed
        session.end("done", 0.0)

    check()
    _drain(server)
