"""What a burst client sends at once (bench/storm.py's clients, bench/sio_open.py's
stand-ins): its request, and its subscribe pipelined behind it. Imports nothing of
tidings, and puts nothing on the path: a benchmark run with ``PYTHONPATH`` naming
another tree measures that tree."""

from __future__ import annotations

import json

from fanout_load import client_frame

WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def request(kind: str, port: int, token: str, project: int) -> bytes:
    """What a client sends at once: its request, and its subscribe pipelined behind it."""
    host = f"Host: 127.0.0.1:{port}\r\n"
    upgrade = (
        f"HTTP/1.1\r\n{host}Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    if kind == "bare":
        return f"GET /ws {upgrade}".encode()
    if kind == "sse":
        return (
            f"GET /sse?token={token}&p={project}:0 HTTP/1.1\r\n{host}"
            "Accept: text/event-stream\r\n\r\n"
        ).encode()
    if kind == "sio":
        auth = json.dumps({"token": token, "projects": {str(project): 0}})
        head = f"GET /socket.io/?EIO=4&transport=websocket {upgrade}"
        return head.encode() + client_frame("40" + auth)
    sub = json.dumps({"type": "subscribe", "token": token, "projects": {project: 0}})
    return f"GET /ws {upgrade}".encode() + client_frame(sub)
