"""A throwaway asyncio HTTP + WebSocket server around :class:`SocketIOServer`, for tests.

It exists to prove the sans-I/O session against the real socket.io-client before
the push server integrates it: HTTP/1.1 keep-alive with one held GET per session,
WebSocket framing by the sans-I/O ``websockets.server.ServerProtocol``, and a
ticker for the timers. On every subscribe it answers ``subscribed`` and pokes
every subscriber of the project with one pre-encoded packet. Not for production:
no CORS, no origin checks, minimal HTTP.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from tidings.protocol import push
from tidings.protocol.poke import Poke, encode_poke
from tidings.push.sio.engineio import Closed, EngineConfig, HttpResponse, Output
from tidings.push.sio.session import InvalidEvent, Refresh, SioSession, SocketIOServer, Subscribe
from tidings.push.sio.socketio import encode_message

PATH = "/socket.io/"
HERE = Path(__file__).resolve().parent
STATIC = {
    "/": HERE / "page.html",
    "/client/scenario.mjs": HERE / "scenario.mjs",
    "/client/socket.io.esm.min.js": HERE.parents[2]
    / "node_modules/socket.io-client/dist/socket.io.esm.min.js",
}
IO_TIMEOUT = 30.0  # every read waits at most this long
KICK_TOKEN = "kick-me"  # a subscriber with this token is disconnected after its poke
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 413: "Too Large"}


class _WebSocket:
    """One accepted WebSocket: the sans-I/O protocol plus its stream writer."""

    def __init__(self, protocol: ServerProtocol, writer: asyncio.StreamWriter) -> None:
        self.protocol = protocol
        self.writer = writer
        self.closing = False

    def send(self, frames: list[bytes]) -> None:
        if self.protocol.state is not State.OPEN:
            return
        for frame in frames:
            self.protocol.send_text(frame)
        self.writer.write(b"".join(self.protocol.data_to_send()))

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            if self.protocol.state is State.OPEN:
                self.protocol.send_close(1000)
            self.writer.write(b"".join(self.protocol.data_to_send()))


@dataclass
class Harness:
    config: EngineConfig
    server: SocketIOServer = field(init=False)
    port: int = 0
    events: list[tuple[str, object]] = field(default_factory=list)
    refusals: list[tuple[str, str, HttpResponse]] = field(default_factory=list)
    version: int = 1
    _held: dict[str, asyncio.Future[HttpResponse]] = field(default_factory=dict)
    _sockets: dict[str, _WebSocket] = field(default_factory=dict)
    _subscribers: dict[int, set[str]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.server = SocketIOServer(self.config)

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    async def __aenter__(self) -> Harness:
        self._listener = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._listener.sockets[0].getsockname()[1]
        self._ticker = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._ticker.cancel()
        self._listener.close()
        for task in list(self._tasks):
            task.cancel()
        for ws in self._sockets.values():
            ws.writer.close()
        await asyncio.gather(self._ticker, *self._tasks, return_exceptions=True)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            for session, out in self.server.tick(self.now()):
                self.apply(session, out)

    # -- carrying out an Output -------------------------------------------------

    def apply(self, session: SioSession, out: Output) -> None:
        if out.poll is not None:
            held = self._held.pop(session.sid, None)
            if held is not None and not held.done():
                held.set_result(out.poll)
        ws = self._sockets.get(session.sid)
        if ws is not None:
            if out.frames:
                ws.send(out.frames)
            if out.close_websocket:
                ws.close()
                del self._sockets[session.sid]
        for event in out.events:
            self.events.append((session.sid, event))
            self._on_event(session, event)

    def _on_event(self, session: SioSession, event: object) -> None:
        if isinstance(event, Subscribe | Refresh):
            session.trust(self.now())  # any token will do here: the larger packet budget
            message = push.subscribed(event.projects, push.ServerState.OK, 25.0)
            self.apply(session, session.send_message(message, self.now()))
            for project in event.projects:
                self._subscribers.setdefault(project, set()).add(session.sid)
                self.version += 1
                self.broadcast(project, self.version)
            if event.token == KICK_TOKEN:
                self.apply(session, session.end("kicked", self.now()))
        elif isinstance(event, InvalidEvent):
            self.apply(
                session,
                session.send_message(push.error("bad_message", event.error.detail), self.now()),
            )
        elif isinstance(event, Closed):
            for sids in self._subscribers.values():
                sids.discard(session.sid)
            held = self._held.pop(session.sid, None)
            if held is not None and not held.done():
                held.cancel()

    def broadcast(self, project: int, version: int) -> None:
        """Fan a poke out: encoded once, the same bytes to every session."""
        packet = encode_message(encode_poke(Poke(project, version, 1732780000.5)))
        now = self.now()
        for sid in list(self._subscribers.get(project, ())):
            session = self.server.sessions.get(sid)
            if session is None:
                continue
            if session.websocket:
                self._sockets[sid].send([packet])  # the fast path: no session call
            else:
                self.apply(session, session.send_packet(packet, now))

    # -- HTTP -------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                    return
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {}
                for line in lines:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                path, _, query = target.partition("?")
                if path != PATH:
                    self._write(writer, self._static(path))
                    continue
                if headers.get("upgrade", "").lower() == "websocket":
                    await self._websocket(head, query, reader, writer)
                    return
                length = int(headers.get("content-length", "0"))
                if length > self.config.max_payload:
                    self._write(writer, HttpResponse(413, (), b""))
                    return
                body = await asyncio.wait_for(reader.readexactly(length), IO_TIMEOUT)
                session, out = self.server.handle_http(method, query, body, self.now())
                if out.response is not None and out.response.status != 200:
                    self.refusals.append((method, query, out.response))
                if out.hold:
                    assert session is not None
                    response = await self._hold(session, reader)
                    if response is None:
                        return
                    self._write(writer, response)
                elif out.response is not None:
                    self._write(writer, out.response)
                if session is not None:
                    out.response = None
                    self.apply(session, out)
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _hold(self, session: SioSession, reader: asyncio.StreamReader) -> HttpResponse | None:
        """Wait for the session's poll answer, or for the client to hang up."""
        future: asyncio.Future[HttpResponse] = asyncio.get_running_loop().create_future()
        self._held[session.sid] = future
        eof = asyncio.ensure_future(reader.read(1))
        either: set[asyncio.Future[HttpResponse] | asyncio.Future[bytes]] = {future, eof}
        try:
            done, _ = await asyncio.wait(
                either, timeout=IO_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            eof.cancel()
        if future in done and not future.cancelled():
            return future.result()
        if self._held.get(session.sid) is future:
            del self._held[session.sid]
            self.apply(session, session.poll_aborted(self.now()))
        return None

    @staticmethod
    def _static(path: str) -> HttpResponse:
        """The browser test's page and scripts (same origin: no CORS needed)."""
        file = STATIC.get(path)
        if file is None or not file.exists():
            return HttpResponse(404, (), b"")
        kind = "text/html" if file.suffix == ".html" else "text/javascript"
        return HttpResponse(200, (("Content-Type", kind),), file.read_bytes())

    @staticmethod
    def _write(writer: asyncio.StreamWriter, response: HttpResponse) -> None:
        lines = [f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Error')}"]
        lines += [f"{name}: {value}" for name, value in response.headers]
        lines.append(f"Content-Length: {len(response.body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)

    # -- WebSocket ---------------------------------------------------------------------

    async def _websocket(
        self, head: bytes, query: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        protocol = ServerProtocol(max_size=self.config.max_payload)
        protocol.receive_data(head)
        [request] = protocol.events_received()
        assert isinstance(request, Request)
        session, out = self.server.handle_websocket(query, self.now())
        if session is None and out.response is None:
            # A second WebSocket for a session: accepted, then closed.
            protocol.send_response(protocol.accept(request))
            protocol.send_close(1000)
            writer.write(b"".join(protocol.data_to_send()))
            return
        if out.response is not None or session is None:
            assert out.response is not None
            protocol.send_response(protocol.reject(out.response.status, out.response.body.decode()))
            writer.write(b"".join(protocol.data_to_send()))
            return
        protocol.send_response(protocol.accept(request))
        ws = _WebSocket(protocol, writer)
        self._sockets[session.sid] = ws
        writer.write(b"".join(protocol.data_to_send()))
        self.apply(session, out)
        while True:
            try:
                data = await asyncio.wait_for(reader.read(65536), IO_TIMEOUT)
            except TimeoutError:
                data = b""
            if not data:
                protocol.receive_eof()
            else:
                protocol.receive_data(data)
            for frame in protocol.events_received():
                assert isinstance(frame, Frame)  # after the handshake, only frames
                if frame.opcode is Opcode.TEXT:
                    self.apply(session, session.receive_ws(bytes(frame.data), self.now()))
                elif frame.opcode is Opcode.BINARY:
                    data = bytes(frame.data)
                    self.apply(session, session.receive_ws(data, self.now(), binary=True))
            pending = protocol.data_to_send()
            if pending:
                writer.write(b"".join(pending))
            if not data or protocol.close_expected() or ws.closing:
                break
        if self._sockets.get(session.sid) is ws:
            del self._sockets[session.sid]
            if not ws.closing:
                self.apply(session, session.ws_closed(self.now()))
