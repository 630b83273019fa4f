"""WebSocket attacks on a real push server (``/ws`` and the Socket.IO WebSocket, which
share one frame layer): each is closed with its documented code in its documented
time, and a legitimate client meanwhile loses nothing (docs/SECURITY.md)."""

from __future__ import annotations

import asyncio

import pytest

from tidings.push.wsframe import OP_CONT, OP_PING, OP_PONG, OP_TEXT
from tidings.testing.hostile import (
    RSS_BOUND_PER_ATTACKER_KB,
    Attack,
    PushProcess,
    Watch,
    attack_socket,
    flood,
    hold_open,
    masked,
    project_id,
    repeat,
)

#: The two WebSockets of a push server; both run on websocket.WebSocketProtocol.
PATHS = {"ws": "/ws", "socketio": "/socket.io/?EIO=4&transport=websocket"}

#: The module's server: defaults, but a message must be whole within 1 s.
PUSH_ENV = {"TIDINGS_PUSH_MESSAGE_TIMEOUT": "1"}

#: How long an attacker past a frame budget may stay open: it is closed as soon
#: as its frames are read; this allows a busy 2-core machine's scheduling.
CLOSE_WITHIN = 1.0


#: Seconds each attack goes on (its attacker reconnecting whenever it is closed).
ATTACK_SECONDS = 2.0


async def attacks(
    push: PushProcess,
    path: str,
    blob: bytes,
    *,
    prefix: bytes = b"",
    subscribe: bool = False,
    each: float = 5.0,
) -> list[Attack]:
    """One attacker, reconnecting for ATTACK_SECONDS; each connection floods up to
    ``each`` s (subscribed first with a valid token if ``subscribe``)."""
    project = project_id() if subscribe else None

    async def once() -> Attack:
        sock, first = await attack_socket(push.port, path, subscribe=project)
        return await flood(sock, blob, each, prefix=prefix, first=first)

    return await repeat(once, ATTACK_SECONDS)


def all_closed(got: list[Attack], code: int, reason: str, within: float) -> None:
    assert got
    for attack in got:
        assert attack.close_code == code, attack
        assert attack.close_reason.startswith(reason), attack
        assert attack.closed_after is not None and attack.closed_after < within, attack


@pytest.mark.parametrize("transport", sorted(PATHS))
async def test_a_pong_flood_before_subscribe_is_closed_at_once(
    push: PushProcess, transport: str
) -> None:
    """125-byte pings, never reading: once cost ~100 MB/s of queued PONGs."""
    pings = masked(OP_PING, b"p" * 125) * 500
    async with Watch(push) as watch:
        got = await attacks(push, PATHS[transport], pings)
    print(transport, len(got), got[0], watch.report.summary())
    all_closed(got, 1008, "too many frames", CLOSE_WITHIN)
    # The unsubscribed budget: at most 8 PONGs (+ the close, + Engine.IO's open).
    assert max(a.read_bytes for a in got) <= 8 * 127 + 256, got
    watch.report.assert_unharmed(rss_bound_kb=RSS_BOUND_PER_ATTACKER_KB)


async def test_a_subscribed_pong_flood_is_closed_at_its_larger_budget(
    push: PushProcess,
) -> None:
    """With a valid token the budget is larger, the end the same."""
    pings = masked(OP_PING, b"p" * 125) * 500
    async with Watch(push) as watch:
        got = await attacks(push, "/ws", pings, subscribe=True)
    print(len(got), got[0], watch.report.summary())
    all_closed(got, 1008, "too many frames", CLOSE_WITHIN)
    watch.report.assert_unharmed(rss_bound_kb=RSS_BOUND_PER_ATTACKER_KB)


async def test_endless_empty_continuations_are_closed_with_1009(push: PushProcess) -> None:
    """``{`` then empty continuations forever: once +565 MB and never closed."""
    prefix = masked(OP_TEXT, b"{", fin=False)
    conts = masked(OP_CONT, b"", fin=False) * 10_000
    async with Watch(push) as watch:
        got = await attacks(push, "/ws", conts, prefix=prefix, subscribe=True)
    print(len(got), got[0], watch.report.summary())
    all_closed(got, 1009, "message in over 16 fragments", CLOSE_WITHIN)
    watch.report.assert_unharmed(rss_bound_kb=RSS_BOUND_PER_ATTACKER_KB)


async def test_a_message_left_unfinished_is_closed_at_the_message_timeout(
    push: PushProcess,
) -> None:
    """Half a message, then silence: the reader would hold it for good."""
    sock, first = await attack_socket(push.port, subscribe=project_id())
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, masked(OP_TEXT, b'{"type":', fin=False))
    got = await hold_open(sock, 5.0, first=first)
    print(got)
    assert got.close_code == 1008, got
    assert got.close_reason == "message not complete within 1 s", got
    assert got.closed_after is not None and 0.9 <= got.closed_after <= 1.0 + CLOSE_WITHIN, got


#: Three attackers' tiny frames: an empty PONG (6 bytes; nothing to answer) on
#: ``/ws``, subscribed or not, and Engine.IO's noop ``6`` (7 bytes) on Socket.IO.
TINY = {
    "ws": (PATHS["ws"], masked(OP_PONG), False),
    "ws-subscribed": (PATHS["ws"], masked(OP_PONG), True),
    "socketio": (PATHS["socketio"], masked(OP_TEXT, b"6"), False),
}


async def test_three_tiny_frame_floods_do_not_starve_the_event_loop(push: PushProcess) -> None:
    """Once: pokes 1-3 s late, /healthz timing out, a false ``degraded`` and lost
    pokes. Each attacker now costs at most its budget of frames per connection."""
    async with Watch(push) as watch:
        runs = await asyncio.gather(
            *(
                attacks(push, path, frame * 2_000, subscribe=subscribe)
                for path, frame, subscribe in TINY.values()
            )
        )
    report = watch.report
    print({name: len(got) for name, got in zip(TINY, runs, strict=True)}, report.summary())
    for got in runs:
        all_closed(got, 1008, "too many frames", CLOSE_WITHIN)
    report.assert_unharmed(rss_bound_kb=len(TINY) * RSS_BOUND_PER_ATTACKER_KB)
