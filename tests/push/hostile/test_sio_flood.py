"""Hostile Socket.IO clients against a real ``tidings push`` on Redis (harness.py).

- Tiny-packet floods: three attackers (each from its own loopback address)
  flood 7-11 byte Engine.IO packets over WebSocket or long-polling (one
  packet per POST, or 16,000 in one 32 KiB POST), and
  reconnect whenever they are closed. Each session ends once past its budget
  (on a WebSocket the frame budget, 8 frames before a token; over polling the
  Engine.IO packet budget, 16 packets before a token), so the flood buys little:
  a legitimate ``/ws`` client keeps its pokes fast and complete, ``/healthz``
  answers, and the server never calls itself ``degraded``.
- Session floods: new sessions are rate-limited per address (a kept-alive
  socket can ask for any number), sessions without a verified token are capped
  per address and in all (the oldest is dropped to make room), and one with no
  token by the handshake timeout is forgotten within ``untrusted_close_timeout``.

Attackers run in a process of their own (tests/push/sio/attackers.py), so that
the measuring client does not share their CPU time.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.push.conftest import token
from tests.push.sio.attackers import attack
from tidings.testing.hostile import RSS_BOUND_PER_ATTACKER_KB, PushProcess, Watch, project_id

HANDSHAKE_TIMEOUT = 2.0
PER_IP = 64
POLL = "/socket.io/?EIO=4&transport=polling"

#: The module's server: per-IP limits on (attackers come from their own
#: addresses), a short handshake timeout, a small pending pool.
PUSH_ENV = {
    "TIDINGS_PUSH_DRAIN_WINDOW": "0.5",  # stopped, not rolled: no 30 s drain
    "TIDINGS_PUSH_IP_RATE": "20",
    "TIDINGS_PUSH_HANDSHAKE_TIMEOUT": str(HANDSHAKE_TIMEOUT),
    "TIDINGS_PUSH_MAX_CONNECTIONS": "20",
    "TIDINGS_PUSH_MAX_PENDING": "100",
}

ATTACK_SECONDS = 4.0
#: A flooding session is closed once its budget is read: well within this,
#: allowing a busy 2-core machine's scheduling.
CLOSED_WITHIN = 1.0

# Each test its own addresses: the per-IP buckets outlive a test.
ATTACKS = {
    "websocket": ["ws-noop@127.0.3.1", "ws-nsp@127.0.3.2", "ws-pong@127.0.3.3"],
    # One POST per noop, and 16,000 noops per 32 KiB POST.
    "polling": ["poll-noop@127.0.4.1", "poll-batch@127.0.4.2", "poll-noop@127.0.4.3"],
}
#: How each is closed (docs/PROTOCOL.md): the frame budget's 1008, or the
#: Engine.IO packet budget's 4429 / HTTP 400. A close frame can be lost to the
#: reset of a socket closed while the attacker still writes.
CLOSES = {
    "websocket": ("1008 too many frames", "4429 too many packets", "no close frame"),
    "polling": ("http_400",),
}


@pytest.mark.parametrize("transport", sorted(ATTACKS))
async def test_a_tiny_packet_flood_ends_each_session_and_spares_everyone_else(
    push: PushProcess, transport: str
) -> None:
    before = await push.metrics()
    async with Watch(push) as watch:
        result = await attack(push.port, ATTACK_SECONDS, ATTACKS[transport])
    after = await push.metrics()
    floods = after["tidings_push_packet_floods_total"] - before["tidings_push_packet_floods_total"]
    print(f"\n{transport}: {watch.report.summary()}; floods {floods:.0f}; {result}")
    watch.report.assert_unharmed(rss_bound_kb=RSS_BOUND_PER_ATTACKER_KB)
    if transport == "polling":
        assert floods >= len(result), after
    for name, got in result.items():
        assert got.get("sessions", 0) >= 1, (name, got)
        assert got["lifetime_max"] is not None and got["lifetime_max"] < CLOSED_WITHIN, (name, got)
        assert got["close_codes"], (name, got)
        for close in got["close_codes"]:
            assert close.startswith(CLOSES[transport]), (name, got)


class Http:
    """One kept-alive HTTP/1.1 connection from a chosen loopback address."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, source: str = "127.0.0.1") -> Http:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), 5
        )
        return cls(reader, writer)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        self.writer.write(head.encode() + body)
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        length = next(
            int(line.split(b":")[1])
            for line in raw.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return int(raw.split(b" ", 2)[1]), await asyncio.wait_for(
            self.reader.readexactly(length), 5
        )

    def close(self) -> None:
        self.writer.close()


async def sio_subscribe(port: int, project: int) -> float:
    """A polling Socket.IO client's handshake up to ``subscribed``; its duration."""
    started = time.monotonic()
    http = await Http.open(port)
    try:
        status, body = await http.request("GET", POLL)
        assert status == 200, (status, body)
        sid = json.loads(body[1:])["sid"]
        auth = {"token": token(projects=[project]), "projects": {str(project): 0}}
        status, body = await http.request(
            "POST", f"{POLL}&sid={sid}", b"40" + json.dumps(auth).encode()
        )
        assert status == 200, (status, body)
        got = b""
        while b'"subscribed"' not in got:
            status, body = await http.request("GET", f"{POLL}&sid={sid}")
            assert status == 200, (status, body)
            got += body
        return time.monotonic() - started
    finally:
        http.close()


async def test_abandoned_sessions_cost_their_address_and_are_forgotten_quickly(
    push: PushProcess,
) -> None:
    project = project_id()
    # Four addresses ask for sessions as fast as they are answered.
    attackers = [f"sessions@127.0.5.{i}" for i in range(1, 5)]
    attacking = asyncio.ensure_future(attack(push.port, 3.0, attackers))
    waits = []
    while not attacking.done():
        waits.append(await sio_subscribe(push.port, project))
        await asyncio.sleep(0.2)
    result = await attacking
    m = await push.metrics()

    # One address's sessions without a token: capped, then refused ...
    http = await Http.open(push.port, "127.0.5.9")
    first = time.monotonic()
    for _ in range(PER_IP):
        status, _ = await http.request("GET", POLL)
        assert status == 200
    http.close()
    http = await Http.open(push.port, "127.0.5.9")
    status, body = await http.request("GET", POLL)
    assert status == 429, (status, body)
    assert json.loads(body)["error"] == "rate_limited"
    # ... until the handshake timeout ends them.
    while True:
        http = await Http.open(push.port, "127.0.5.9")
        status, _ = await http.request("GET", POLL)
        http.close()
        if status == 200:
            break
        assert time.monotonic() - first < HANDSHAKE_TIMEOUT + 1.5
        await asyncio.sleep(0.1)
    freed_after = time.monotonic() - first

    print(
        f"\nsession flood: {result}; evicted {m['tidings_push_pending_evicted_total']:.0f}; "
        f"legitimate handshakes {len(waits)}, slowest {max(waits) * 1000:.0f} ms; "
        f"{PER_IP} abandoned sessions freed after {freed_after:.2f} s"
    )
    assert waits and max(waits) < 1.0, waits
    for name, got in result.items():
        assert got.get("http_429", 0) > 0, (name, got)
        assert not got.get("http_403"), (name, got)  # never "Server full"
    assert freed_after >= HANDSHAKE_TIMEOUT - 0.1
