"""Bare clients for tests: a WebSocket speaking frames by hand, an SSE reader on a raw socket.

They exist to send what real clients never would (unmasked or oversize frames,
bad handshakes) and to read exactly what the server wrote. Every read has a timeout.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from typing import Any

import orjson

from tidings.push.wsframe import OP_CLOSE, OP_TEXT

TIMEOUT = 5.0


def client_frame(op: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    n = len(payload)
    b0 = (0x80 if fin else 0) | op
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes((b0, mbit | n))
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


class RawWebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.status = 0
        self.head = b""

    @classmethod
    async def connect(
        cls, port: int, *, path: str = "/ws", headers: dict[str, str] | None = None
    ) -> RawWebSocket:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        ws = cls(reader, writer)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        ws.head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        ws.status = int(ws.head.split(b" ", 2)[1])
        return ws

    def send(self, op: int, payload: bytes, **kw: Any) -> None:
        self.writer.write(client_frame(op, payload, **kw))

    def send_json(self, body: dict[str, Any]) -> None:
        self.send(OP_TEXT, orjson.dumps(body))

    async def frame(self) -> tuple[int, bytes]:
        """Next server frame as (opcode, payload); asserts the server never masks."""
        b0, b1 = await asyncio.wait_for(self.reader.readexactly(2), TIMEOUT)
        assert not b1 & 0x80, "server frames are never masked"
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(await self.reader.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await self.reader.readexactly(8), "big")
        return b0 & 0x0F, await asyncio.wait_for(self.reader.readexactly(n), TIMEOUT)

    async def message(self) -> dict[str, Any]:
        op, payload = await self.frame()
        assert op == OP_TEXT, (op, payload)
        body: dict[str, Any] = orjson.loads(payload)
        return body

    async def close_code(self) -> tuple[int, str]:
        """Skip messages until the close frame; (code, reason)."""
        while True:
            op, payload = await self.frame()
            if op == OP_CLOSE:
                return int.from_bytes(payload[:2], "big"), payload[2:].decode()

    async def body(self) -> bytes:
        """For refused handshakes: the JSON body after the head."""
        return await asyncio.wait_for(self.reader.read(65536), TIMEOUT)

    async def eof(self) -> bool:
        try:
            return await asyncio.wait_for(self.reader.read(1), TIMEOUT) == b""
        except ConnectionError:
            return True

    def close(self) -> None:
        self.writer.close()


class RawSse:
    """GET a stream and read events off the socket, as EventSource would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self.retry: int | None = None

    @classmethod
    async def connect(
        cls, port: int, query: str, *, headers: dict[str, str] | None = None
    ) -> RawSse:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        sse = cls(reader, writer)
        lines = [
            f"GET /sse?{query} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Accept: text/event-stream",
        ]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        status_line, *rest = head.decode("latin-1").split("\r\n")
        sse.status = int(status_line.split(" ")[1])
        for line in rest:
            if ":" in line:
                name, _, value = line.partition(":")
                sse.headers[name.strip().lower()] = value.strip()
        return sse

    async def event(self) -> dict[str, Any]:
        """Next ``data:`` event as JSON (``retry:`` and comments are noted or skipped)."""
        while True:
            block = await asyncio.wait_for(self.reader.readuntil(b"\n\n"), TIMEOUT)
            data = []
            for line in block.decode().split("\n"):
                if line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
                elif line.startswith("retry:"):
                    self.retry = int(line[6:])
            if data:
                body: dict[str, Any] = orjson.loads("\n".join(data))
                return body

    async def body(self) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
        body: dict[str, Any] = orjson.loads(raw)
        return body

    def close(self) -> None:
        self.writer.close()
