"""The request-head limit of a real push server counts head bytes, and only them:
a body read along with its head is not head, and every request on a kept-alive
socket is counted from its first byte (docs/SECURITY.md)."""

from __future__ import annotations

import asyncio

import orjson

from tidings.testing.hostile import PushProcess

#: The server's ``max_request_head_bytes`` (default).
HEAD_LIMIT = 16 * 1024


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, bytes, bytes]:
    """Write one request (in one write) and read its response: (status, head, body)."""
    writer.write(raw)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    body = await asyncio.wait_for(reader.readexactly(length), 10)
    return int(head.split(b" ", 2)[1]), head, body


async def connect(push: PushProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", push.port), 10)


async def test_a_30_kb_socketio_post_read_with_its_head_is_accepted(push: PushProcess) -> None:
    """Socket.IO advertises 32 KB payloads; the body arrives in the head's read."""
    reader, writer = await connect(push)
    base = "/socket.io/?EIO=4&transport=polling"
    try:
        get = f"GET {base} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        status, _, body = await exchange(reader, writer, get)
        assert status == 200 and body.startswith(b"0"), body
        sid = orjson.loads(body[1:])["sid"]
    finally:
        writer.close()
    # On a new socket (as a browser's pool may send it), head and body in one read.
    reader, writer = await connect(push)
    try:
        payload = b"40\x1e42" + orjson.dumps(["noise", "x" * 30_000])
        assert 29_000 < len(payload) < 32 * 1024
        post = (
            f"POST {base}&sid={sid} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        status, _, body = await exchange(reader, writer, post)
        assert status == 200, (status, body)
    finally:
        writer.close()


async def test_the_second_request_on_a_kept_alive_socket_is_counted(push: PushProcess) -> None:
    """Its first read once went uncounted: a 64 KB head was accepted."""
    reader, writer = await connect(push)
    try:
        status, head, _ = await exchange(
            reader, writer, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert status == 200 and b"keep-alive" in head
        big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 64 * 1024 + b"\r\n\r\n"
        status, _, body = await exchange(reader, writer, big)
        assert status == 431, (status, body)
        assert orjson.loads(body) == {"error": "too_large", "detail": "request head too large"}
    finally:
        writer.close()


async def test_heads_just_under_the_limit_pass_and_just_over_it_get_431(
    push: PushProcess,
) -> None:
    for pad, expected in ((HEAD_LIMIT - 1024, 200), (HEAD_LIMIT + 1, 431)):
        reader, writer = await connect(push)
        try:
            raw = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * pad + b"\r\n\r\n"
            status, _, body = await exchange(reader, writer, raw)
            assert status == expected, (pad, status, body)
        finally:
            writer.close()


async def test_an_endless_header_name_is_cut_at_head_and_body_limits(push: PushProcess) -> None:
    """The parser reports a header only once it is whole: until then raw bytes count."""
    reader, writer = await connect(push)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-" + b"a" * 200 * 1024)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 431"), head
    finally:
        writer.close()
