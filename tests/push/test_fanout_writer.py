"""The fan-out write loop (tidings.push.fanout): the native loop and the Python
reference keep one contract, and the native loop's direct ``send()`` never
breaks a guarantee of the transport it bypasses.

Real TCP sockets on loopback, on both loops (uvloop is what ``tidings push``
runs; asyncio's transports close their fd the same way). The native cases
fail in CI when the extension was not built (``./dev`` installs gcc) and skip,
with the reason, elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

import pytest
import uvloop

from tests.support import unavailable
from tidings.push import fanout as fanout_module
from tidings.push.fanout import Fanout, fanout_python
from tidings.push.hub import CONN_SLOTS, Conn, EncodedMessage
from tidings.push.websocket import direct_fd
from tidings.push.wsframe import text_frame

from .fakes import FakeConn

IMPLS = ("native", "python")
#: SockConn's frame key, as "ws" is PushWebSocket's.
FRAME_KEY = "sock"

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}
WAIT = 5.0


def impl(name: str) -> Fanout:
    if name == "python":
        return fanout_python
    native = fanout_module.NATIVE
    if native is None:
        unavailable(
            "the native fan-out (src/tidings/push/_fanout.c) is not built",
            ": CI builds it (pip install -e . with gcc)",
        )
    return native


def run(loop: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        runner.run(asyncio.wait_for(main(), WAIT * 4))


def refuse(conn: Conn, project: int, msg: EncodedMessage) -> None:
    raise AssertionError("nothing is paused here")


class SockConn(Conn, asyncio.Protocol):
    """What PushWebSocket is to the fan-out: ``write`` puts one cached frame on
    the transport, ``wfd`` is the socket's fd; it counts the calls it got."""

    __slots__ = (*CONN_SLOTS, "lost", "pauses", "transport", "writes")
    kind: ClassVar[str] = "sock"
    direct_frame_key: ClassVar[str | None] = FRAME_KEY

    def __init__(self) -> None:
        self.init_conn()
        self.transport: asyncio.Transport | None = None
        self.writes = 0
        self.pauses = 0
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport) or hasattr(transport, "write")
        self.transport = transport  # type: ignore[assignment]
        self.versions = {1: 0}
        self.wfd = direct_fd(self.transport)  # type: ignore[arg-type]

    def write(self, msg: EncodedMessage) -> None:
        self.writes += 1
        assert self.transport is not None
        if self.lost.done():
            return  # the hub would have detached it: nothing to write to
        key = type(self).direct_frame_key or f"unkeyed-{id(self)}"
        frame = msg.frames.get(key)
        if frame is None:  # as PushWebSocket.write: frame once, cache for the rest
            frame = msg.frames[key] = self.frame(msg)
        self.transport.write(frame)

    def frame(self, msg: EncodedMessage) -> bytes:
        return text_frame(msg.data)

    def pause_writing(self) -> None:
        self.pauses += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


class PrefixConn(SockConn):
    """Another transport's framing of the same message (as Socket.IO's ``42[...]``
    is to ``/ws``), under its own key."""

    __slots__ = ()
    direct_frame_key: ClassVar[str | None] = "prefixed"

    def frame(self, msg: EncodedMessage) -> bytes:
        return text_frame(b"42" + msg.data)


class NoKeyConn(SockConn):
    """A socket whose type names no frame key: never sent to directly."""

    __slots__ = ()
    direct_frame_key: ClassVar[str | None] = None


def message(frame: bytes) -> EncodedMessage:
    msg = EncodedMessage(b"{}")
    msg.frames[FRAME_KEY] = frame
    return msg


async def pair(
    sndbuf: int | None = None, kind: type[SockConn] = SockConn
) -> tuple[SockConn, socket.socket]:
    """A SockConn on the server side of a loopback TCP connection, and its peer."""
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.create_connection(listener.getsockname(), timeout=WAIT)
        server_side, _ = listener.accept()
    if sndbuf is not None:
        server_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
    peer.setblocking(False)
    conn = kind()
    await loop.connect_accepted_socket(lambda: conn, server_side)
    assert conn.wfd >= 0
    return conn, peer


async def read(peer: socket.socket, size: int) -> bytes:
    """Exactly ``size`` bytes from the peer (the server's loop keeps flushing meanwhile)."""
    loop = asyncio.get_running_loop()
    chunks: list[bytes] = []
    got = 0
    while got < size:
        chunk = await asyncio.wait_for(loop.sock_recv(peer, size - got), WAIT)
        assert chunk, f"EOF after {got} of {size} bytes"
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def nothing_more(peer: socket.socket) -> bool:
    try:
        return peer.recv(1) == b""  # EOF
    except BlockingIOError:
        return True


# -- the contract: both loops decide the same ----------------------------------


@pytest.mark.parametrize("name", IMPLS)
def test_writes_every_watcher_behind_once_and_queues_the_paused(name: str) -> None:
    loop_fanout = impl(name)
    behind, ahead, level, paused = FakeConn(), FakeConn(), FakeConn(), FakeConn()
    behind.versions, ahead.versions, level.versions = {5: 1}, {5: 9}, {5: 3}
    paused.versions, paused.paused_since = {5: 1}, 10.0
    queued: list[tuple[Conn, int, EncodedMessage]] = []
    msg = EncodedMessage(b'{"type":"poke","project":5,"version":3}')

    sent = loop_fanout(
        [behind, ahead, level, paused], 5, 3, msg, lambda c, p, m: queued.append((c, p, m))
    )

    assert sent == 1
    assert behind.raw == [msg] and ahead.raw == [] and level.raw == [] and paused.raw == []
    assert queued == [(paused, 5, msg)]
    assert [c.versions[5] for c in (behind, ahead, level, paused)] == [3, 9, 3, 3]


@pytest.mark.parametrize("name", IMPLS)
def test_an_unwatched_project_and_a_failing_write_raise_as_in_python(name: str) -> None:
    loop_fanout = impl(name)
    stranger = FakeConn()
    with pytest.raises(KeyError):
        loop_fanout([stranger], 5, 3, EncodedMessage(b"{}"), refuse)
    closed = FakeConn()
    closed.versions, closed.closed = {5: 1}, (1000, "")
    with pytest.raises(AssertionError, match="write after close"):
        loop_fanout([closed], 5, 3, EncodedMessage(b"{}"), refuse)


# -- the direct path on real sockets ------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("name", IMPLS)
def test_an_idle_connection_gets_the_frame(loop: str, name: str) -> None:
    async def main() -> None:
        conn, peer = await pair()
        frame = b"\x81\x05hello"
        assert impl(name)([conn], 1, 1, message(frame), refuse) == 1
        assert await read(peer, len(frame)) == frame
        # The native loop sent it itself; the Python loop went through write().
        assert conn.writes == (0 if name == "native" else 1)
        assert conn.transport is not None and conn.transport.get_write_buffer_size() == 0
        peer.close()

    run(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("name", IMPLS)
def test_a_partial_send_hands_the_rest_to_the_transport_in_order(loop: str, name: str) -> None:
    async def main() -> None:
        conn, peer = await pair(sndbuf=16384)
        assert conn.transport is not None
        frame = os.urandom(2_000_000)  # far more than the socket buffers hold
        impl(name)([conn], 1, 1, message(frame), refuse)
        buffered = conn.transport.get_write_buffer_size()
        assert 0 < buffered < len(frame), "the kernel took a part, the transport the rest"
        if name == "native":
            assert conn.writes == 0
        assert await read(peer, len(frame)) == frame
        peer.close()

    run(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("name", IMPLS)
def test_on_eagain_then_with_a_buffer_frames_queue_behind_earlier_bytes(
    loop: str, name: str
) -> None:
    async def main() -> None:
        conn, peer = await pair(sndbuf=16384)
        transport = conn.transport
        assert transport is not None
        # Fill the kernel's send buffer behind the transport's back: send() says EAGAIN.
        filler = bytearray()
        chunk = b"f" * 4096
        while True:
            try:
                filler += chunk[: os.write(conn.wfd, chunk)]
            except BlockingIOError:
                break
        first, second = b"\x81\x03one", b"\x81\x03two"
        loop_fanout = impl(name)
        assert loop_fanout([conn], 1, 1, message(first), refuse) == 1
        assert transport.get_write_buffer_size() == len(first), "EAGAIN: the transport holds it"
        # Now the transport buffers: the next frame must not be sent past it.
        assert loop_fanout([conn], 1, 2, message(second), refuse) == 1
        assert transport.get_write_buffer_size() == len(first) + len(second)
        if name == "native":
            assert conn.writes == 1, "with a non-empty buffer the frame goes through write()"
        expected = bytes(filler) + first + second
        assert await read(peer, len(expected)) == expected
        peer.close()

    run(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("name", IMPLS)
def test_a_closing_transport_gets_nothing_even_when_its_fd_number_is_reused(
    loop: str, name: str
) -> None:
    async def main() -> None:
        conn, peer = await pair()
        assert conn.transport is not None
        stale_fd = conn.wfd
        conn.transport.close()
        loop_fanout = impl(name)
        # Closing, fd still open: not sent directly (write() decides, as before).
        loop_fanout([conn], 1, 1, message(b"\x81\x01a"), refuse)
        await asyncio.wait_for(conn.lost, WAIT)
        assert await asyncio.wait_for(asyncio.get_running_loop().sock_recv(peer, 10), WAIT) == b""
        # Closed: the fd number now names another connection's socket.
        other, other_peer = socket.socketpair()
        if other_peer.fileno() == stale_fd:
            other, other_peer = other_peer, other
        reused = other.fileno() == stale_fd  # the kernel reuses the lowest free number
        if not reused:
            os.dup2(other.fileno(), stale_fd)
        other_peer.setblocking(False)
        try:
            loop_fanout([conn], 1, 2, message(b"\x81\x01b"), refuse)
            assert nothing_more(other_peer), "a frame went to the socket that reused the fd"
        finally:
            if not reused:
                os.close(stale_fd)
            other.close()
            other_peer.close()
            peer.close()
        if name == "native":
            assert conn.writes == 2, "both went to write(), none to the fd"

    run(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("name", IMPLS)
def test_a_reset_connection_is_reported_by_the_transport(loop: str, name: str) -> None:
    async def main() -> None:
        conn, peer = await pair()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        peer.close()  # RST
        impl(name)([conn], 1, 1, message(b"\x81\x01a"), refuse)
        exc = await asyncio.wait_for(conn.lost, WAIT)
        assert isinstance(exc, (ConnectionResetError, BrokenPipeError)), exc

    run(loop, main)


def test_tls_or_non_socket_transports_get_no_direct_fd() -> None:
    class Fake:
        def __init__(self, extra: dict[str, Any]) -> None:
            self.extra = extra

        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return self.extra.get(name, default)

    with socket.socket() as sock:
        assert direct_fd(Fake({"socket": sock})) == sock.fileno()  # type: ignore[arg-type]
        tls = Fake({"socket": sock, "sslcontext": object()})
        assert direct_fd(tls) == -1  # type: ignore[arg-type]
    with socket.socket(type=socket.SOCK_DGRAM) as udp:
        assert direct_fd(Fake({"socket": udp})) == -1  # type: ignore[arg-type]
    assert direct_fd(Fake({})) == -1  # type: ignore[arg-type]


# -- which loop the hub gets ---------------------------------------------------

PROBE = (
    "from tidings.push import fanout; from tidings.push.hub import Hub;"
    "print(fanout.NATIVE is not None, fanout.fanout is fanout.fanout_python)"
)


def probe(env: dict[str, str], prelude: str = "") -> str:
    out = subprocess.run(
        [sys.executable, "-c", prelude + PROBE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


def test_without_the_extension_the_python_loop_is_used() -> None:
    # As on a machine without a compiler: the module cannot be imported.
    block = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'tidings.push._fanout': raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    assert probe({}, block) == "False True"
    assert probe({"TIDINGS_PUSH_NATIVE_FANOUT": "0"}) == "False True"


def test_the_native_loop_is_used_when_built() -> None:
    impl("native")
    assert probe({"TIDINGS_PUSH_NATIVE_FANOUT": "1"}) == "True False"


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("name", IMPLS)
def test_direct_sockets_mixed_with_other_transports_each_get_the_message_once(
    loop: str, name: str
) -> None:
    async def main() -> None:
        (a, peer_a), (b, peer_b), (paused, peer_p) = [await pair() for _ in range(3)]
        paused.paused_since = 1.0
        other = FakeConn()  # SSE or Socket.IO: always through write()
        other.versions = {1: 0}
        queued: list[Conn] = []
        msg = EncodedMessage(b'{"type":"poke"}')  # not framed yet: the first write() frames it
        frame = text_frame(msg.data)
        conns: list[Conn] = [other, a, paused, b]
        sent = impl(name)(conns, 1, 1, msg, lambda c, p, m: queued.append(c))

        assert sent == 3 and queued == [paused]
        assert other.raw == [msg]
        if name == "native":
            assert (a.writes, b.writes) == (1, 0), "the first frames it, the next is sent"
        assert await read(peer_a, len(frame)) == frame
        assert await read(peer_b, len(frame)) == frame
        assert nothing_more(peer_p)
        assert [c.versions[1] for c in (a, b, paused, other)] == [1, 1, 1, 1]
        for peer in (peer_a, peer_b, peer_p):
            peer.close()

    run(loop, main)


@pytest.mark.parametrize("name", IMPLS)
def test_each_connection_type_gets_its_own_framing_sent_directly(name: str) -> None:
    async def main() -> None:
        kinds: list[type[SockConn]] = [SockConn, PrefixConn, NoKeyConn] * 3
        pairs = [await pair(kind=kind) for kind in kinds]
        msg = EncodedMessage(b'{"type":"poke"}')
        sent = impl(name)([conn for conn, _ in pairs], 1, 1, msg, refuse)

        assert sent == len(pairs)
        for conn, peer in pairs:
            frame = conn.frame(msg)
            assert await read(peer, len(frame)) == frame
            assert nothing_more(peer)
        writes = {kind: [c.writes for c, _ in pairs if type(c) is kind] for kind in kinds}
        if name == "native":
            # The first of each keyed type frames the message; the rest are sent.
            assert writes == {SockConn: [1, 0, 0], PrefixConn: [1, 0, 0], NoKeyConn: [1, 1, 1]}
        for _, peer in pairs:
            peer.close()

    run("uvloop", main)
