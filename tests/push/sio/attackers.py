"""Hostile Socket.IO / Engine.IO clients and silent sockets, for tests and bench/hostile.py.

Run as a process (``python -m tests.push.sio.attackers PORT SECONDS KIND@SOURCE ...``)
so that the attack does not share the measuring client's event loop: each
attacker is a thread with blocking sockets, bound to its own loopback source
address (127.0.0.2, ...), so the server's per-IP limits see distinct clients.
It prints one JSON line: what each attacker got (sessions opened, packets sent,
how it was closed). Attacks:

- ``ws-noop`` / ``ws-nsp`` / ``ws-pong``: a WebSocket session that floods the
  7-11 byte Engine.IO packets ``6``, ``40/a,`` or ``3``, reconnecting when closed;
- ``ws-ping``: empty WebSocket PING frames on a Socket.IO WebSocket;
- ``poll-noop``: one kept-alive socket that POSTs ``6`` as fast as answered,
  with a new handshake whenever its session ends;
- ``poll-batch``: the same with 16,000 noops in each 32 KiB POST;
- ``sessions``: one kept-alive socket asking for new polling sessions and
  abandoning them.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tidings.testing.clients import client_frame

PATH = "/socket.io/?EIO=4&transport="
BATCH = 256  # packets per write


class Tally:
    """What one attacker got, summed over its connections."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.close_codes: collections.Counter[str] = collections.Counter()
        #: Seconds from the first flood packet to the server's close, per session.
        self.lifetimes: list[float] = []

    def as_dict(self) -> dict[str, Any]:
        life = sorted(self.lifetimes)
        return {
            **self.counts,
            "close_codes": dict(self.close_codes),
            "lifetime_max": round(life[-1], 3) if life else None,
            "lifetime_median": round(life[len(life) // 2], 3) if life else None,
        }


def _connect(port: int, source: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=3, source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_head(sock: socket.socket, buf: bytearray) -> tuple[int, dict[str, str]] | None:
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    end = buf.index(b"\r\n\r\n")
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    del buf[: end + 4]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ", 2)[1]), headers


def _read_response(sock: socket.socket, buf: bytearray) -> tuple[int, bytes, bool] | None:
    """(status, body, server closes) of one HTTP response; None at EOF."""
    head = _read_head(sock, buf)
    if head is None:
        return None
    status, headers = head
    length = int(headers.get("content-length", "0"))
    while len(buf) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    body = bytes(buf[:length])
    del buf[:length]
    return status, body, headers.get("connection", "").lower() == "close"


def _server_close(buf: bytes) -> str | None:
    """``"<code> <reason>"`` of the first close frame among server frames, if any."""
    i = 0
    while i + 2 <= len(buf):
        op, n = buf[i] & 0x0F, buf[i + 1] & 0x7F
        j = i + 2
        if n == 126:
            n, j = int.from_bytes(buf[j : j + 2], "big"), j + 2
        elif n == 127:
            n, j = int.from_bytes(buf[j : j + 8], "big"), j + 8
        if op == 0x8 and j + n <= len(buf):
            if n < 2:
                return "1005"
            reason = buf[j + 2 : j + n].decode(errors="replace")
            return f"{int.from_bytes(buf[j : j + 2], 'big')} {reason}".rstrip()
        i = j + n
    return None


def _reconnect(
    port: int, source: str, tally: Tally, buf: bytearray | None = None
) -> socket.socket | None:
    """A new connection from ``source`` (``buf``, the old one's unread bytes, is
    emptied); None, counted and after a short pause, if it failed (the attacker
    then tries again)."""
    try:
        sock = _connect(port, source)
    except OSError:
        tally.counts["connect_failed"] += 1
        time.sleep(0.01)
        return None
    if buf is not None:
        buf.clear()
    return sock


def flood_websocket(port: int, source: str, kind: str, until: float, tally: Tally) -> None:
    payload = {"ws-noop": b"6", "ws-nsp": b"40/a,", "ws-pong": b"3", "ws-ping": b""}[kind]
    frame = client_frame(0x9 if kind == "ws-ping" else 0x1, payload)
    batch = frame * BATCH
    while time.monotonic() < until:
        sock = _reconnect(port, source, tally)
        if sock is None:
            continue
        with sock:
            request = (
                f"GET {PATH}websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            )
            buf = bytearray()
            try:
                sock.sendall(request.encode())
                head = _read_head(sock, buf)
            except OSError:
                tally.counts["handshake_failed"] += 1
                continue
            if head is None or head[0] != 101:
                tally.counts[f"http_{head[0] if head else 'eof'}"] += 1
                continue
            tally.counts["sessions"] += 1
            started = time.monotonic()
            sock.setblocking(False)
            closed = False
            while not closed and time.monotonic() < until:
                try:
                    sent = sock.send(batch)
                    tally.counts["bytes_sent"] += sent
                except BlockingIOError:
                    time.sleep(0.001)
                except OSError:
                    closed = True
                try:
                    while True:
                        chunk = sock.recv(65536)
                        if not chunk:
                            closed = True
                            break
                        buf += chunk
                except BlockingIOError:
                    pass
                except OSError:
                    closed = True
                if _server_close(bytes(buf)) is not None:
                    closed = True
            if closed:
                tally.lifetimes.append(time.monotonic() - started)
                tally.close_codes[_server_close(bytes(buf)) or "no close frame"] += 1


#: A POST body of 16,000 noops: just under maxPayload (32 KiB).
BATCH_BODY = b"\x1e".join([b"6"] * 16_000)


def flood_polling(port: int, source: str, until: float, tally: Tally, body: bytes = b"6") -> None:
    sock: socket.socket | None = None
    buf = bytearray()
    sid = ""
    started = 0.0

    def request(method: str, query: str, body: bytes = b"") -> tuple[int, bytes, bool] | None:
        assert sock is not None
        head = f"{method} {PATH}polling{query} HTTP/1.1\r\nHost: x\r\n"
        if method == "POST":
            head += f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        sock.sendall(head.encode() + b"\r\n" + body)
        return _read_response(sock, buf)

    while time.monotonic() < until:
        if sock is None:
            sock = _reconnect(port, source, tally, buf)
            if sock is None:
                continue
            sid = ""
        try:
            if not sid:
                got = request("GET", "")
                if got is not None and got[0] == 200:
                    sid = json.loads(got[1][1:])["sid"]
                    tally.counts["sessions"] += 1
                    started = time.monotonic()
            else:
                got = request("POST", f"&sid={sid}", body)
                if got is not None and got[0] == 200:
                    tally.counts["packets_accepted"] += body.count(b"\x1e") + 1
                elif got is not None:
                    tally.lifetimes.append(time.monotonic() - started)
                    tally.close_codes[f"http_{got[0]}"] += 1
                    sid = ""
        except (OSError, ValueError, KeyError):
            got = None
        if got is None or got[2]:
            if got is not None and not sid:
                tally.counts[f"http_{got[0]}"] += got[0] != 200
            sock.close()
            sock = None


def abandon_sessions(port: int, source: str, until: float, tally: Tally) -> None:
    """Ask for polling sessions on one kept-alive socket, never come back for them."""
    sock: socket.socket | None = None
    buf = bytearray()
    while time.monotonic() < until:
        if sock is None:
            sock = _reconnect(port, source, tally, buf)
            if sock is None:
                continue
        try:
            sock.sendall(f"GET {PATH}polling HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            got = _read_response(sock, buf)
        except OSError:
            got = None
        if got is not None:
            tally.counts["sessions" if got[0] == 200 else f"http_{got[0]}"] += 1
        if got is None or got[2]:
            sock.close()
            sock = None
            tally.counts["sockets_closed_by_server"] += 1


def run(port: int, seconds: float, attacks: list[tuple[str, str]]) -> dict[str, Any]:
    """Run every ``(kind, source address)`` attack in its own thread for ``seconds``."""
    until = time.monotonic() + seconds
    tallies = [Tally() for _ in attacks]
    threads = []
    for (kind, source), tally in zip(attacks, tallies, strict=True):
        if kind.startswith("ws-"):
            args: tuple[Any, ...] = (port, source, kind, until, tally)
            target: Any = flood_websocket
        elif kind == "poll-noop":
            args, target = (port, source, until, tally), flood_polling
        elif kind == "poll-batch":
            args, target = (port, source, until, tally, BATCH_BODY), flood_polling
        elif kind == "sessions":
            args, target = (port, source, until, tally), abandon_sessions
        else:
            raise ValueError(f"unknown attack {kind!r}")
        threads.append(threading.Thread(target=target, args=args, daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 10)
    return {
        f"{kind}@{source}": t.as_dict() for (kind, source), t in zip(attacks, tallies, strict=True)
    }


# -- the attack as a process ------------------------------------------------------

ROOT = Path(__file__).resolve().parents[3]


async def attack(port: int, seconds: float, attacks: list[str]) -> dict[str, Any]:
    """Run ``python -m tests.push.sio.attackers`` (``KIND@SOURCE`` specs) to its end."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.push.sio.attackers",
        str(port),
        str(seconds),
        *attacks,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), seconds + 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    result: dict[str, Any] = json.loads(out)
    return result


def main(argv: list[str]) -> None:
    os.nice(10)  # the server under test, not the attacker, should win the CPU
    port, seconds = int(argv[0]), float(argv[1])
    attacks = [tuple(spec.split("@", 1)) for spec in argv[2:]]
    print(json.dumps(run(port, seconds, attacks)), flush=True)  # type: ignore[arg-type]


if __name__ == "__main__":
    main(sys.argv[1:])
