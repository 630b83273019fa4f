"""RFC 6455 framing without sockets: what the reader accepts, refuses, and keeps buffered."""

from __future__ import annotations

import pytest

from tidings.protocol.errors import CloseCode
from tidings.push.wsframe import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    FrameBudget,
    FrameError,
    FrameReader,
    OverBudget,
    accept_key,
    close_frame,
    encode_frame,
    parse_close,
    unmask,
)
from tidings.testing.clients import client_frame


def test_accept_key_matches_the_rfc_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_server_frames_use_the_shortest_length_encoding(size: int) -> None:
    frame = encode_frame(OP_TEXT, b"x" * size)
    header = 2 if size < 126 else 4 if size < 65536 else 10
    assert len(frame) == header + size
    assert frame[0] == 0x81 and not frame[1] & 0x80


def test_masked_frames_are_unmasked_whatever_the_chunking() -> None:
    data = client_frame(OP_TEXT, b'{"type":"subscribe"}') + client_frame(OP_PING, b"hi")
    for cut in range(len(data)):
        reader = FrameReader(1024)
        out = reader.feed(data[:cut]) + reader.feed(data[cut:])
        assert out == [(OP_TEXT, b'{"type":"subscribe"}'), (OP_PING, b"hi")]
        assert reader.idle


def test_unmask_is_its_own_inverse() -> None:
    payload = bytes(range(256)) * 3
    assert unmask(unmask(payload, b"\x01\x02\x03\x04"), b"\x01\x02\x03\x04") == payload


def test_fragmented_messages_are_reassembled_around_control_frames() -> None:
    reader = FrameReader(1024)
    data = (
        client_frame(OP_TEXT, b"hel", fin=False)
        + client_frame(OP_PING, b"p")
        + client_frame(OP_CONT, b"lo", fin=False)
        + client_frame(OP_CONT, b"!")
    )
    assert reader.feed(data) == [(OP_PING, b"p"), (OP_TEXT, b"hello!")]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (client_frame(OP_TEXT, b"x", mask=False), CloseCode.PROTOCOL_ERROR),
        (bytes((0x80 | 0x40 | OP_TEXT, 0x80)) + b"\0\0\0\0", CloseCode.PROTOCOL_ERROR),
        (client_frame(0x3, b""), CloseCode.PROTOCOL_ERROR),
        (client_frame(0xB, b""), CloseCode.PROTOCOL_ERROR),
        (client_frame(OP_PING, b"x" * 126), CloseCode.PROTOCOL_ERROR),
        (client_frame(OP_PING, b"x", fin=False), CloseCode.PROTOCOL_ERROR),
        (client_frame(OP_CONT, b"x"), CloseCode.PROTOCOL_ERROR),
        (client_frame(OP_TEXT, b"\xff\xfe"), CloseCode.INVALID_PAYLOAD),
    ],
)
def test_broken_frames_are_refused_with_the_right_code(frame: bytes, code: int) -> None:
    with pytest.raises(FrameError) as exc:
        FrameReader(1024).feed(frame)
    assert exc.value.code == code


def test_a_new_message_inside_a_fragmented_one_is_refused() -> None:
    reader = FrameReader(1024)
    reader.feed(client_frame(OP_TEXT, b"a", fin=False))
    with pytest.raises(FrameError) as exc:
        reader.feed(client_frame(OP_BINARY, b"b"))
    assert exc.value.code == CloseCode.PROTOCOL_ERROR


def test_oversize_is_refused_from_the_header_before_the_payload_arrives() -> None:
    reader = FrameReader(1000)
    header_only = client_frame(OP_TEXT, b"x" * 1001)[:8]
    with pytest.raises(FrameError) as exc:
        reader.feed(header_only)
    assert exc.value.code == CloseCode.TOO_BIG


def test_oversize_counts_the_whole_fragmented_message() -> None:
    reader = FrameReader(1000)
    reader.feed(client_frame(OP_TEXT, b"x" * 600, fin=False))
    with pytest.raises(FrameError) as exc:
        reader.feed(client_frame(OP_CONT, b"x" * 401))
    assert exc.value.code == CloseCode.TOO_BIG


def test_a_message_in_too_many_fragments_is_refused_whatever_its_size() -> None:
    reader = FrameReader(1000, max_fragments=4)
    frames = reader.feed(
        client_frame(OP_TEXT, b"{", fin=False) + client_frame(OP_CONT, b"", fin=False) * 3
    )
    assert frames == [] and not reader.idle
    with pytest.raises(FrameError) as exc:
        reader.feed(client_frame(OP_CONT, b"}"))
    assert exc.value.code == CloseCode.TOO_BIG
    assert exc.value.reason == "message in over 4 fragments"


def test_fragments_are_counted_per_message() -> None:
    reader = FrameReader(1000, max_fragments=2)
    whole = client_frame(OP_TEXT, b"a", fin=False) + client_frame(OP_CONT, b"b")
    assert reader.feed(whole * 5) == [(OP_TEXT, b"ab")] * 5


def test_the_reader_parses_no_frame_past_its_allowance() -> None:
    reader = FrameReader(1000)
    pings = client_frame(OP_PING, b"") * 3
    assert reader.feed(pings, allowance=3) == [(OP_PING, b"")] * 3
    assert reader.spent == 3
    with pytest.raises(OverBudget) as exc:
        reader.feed(pings + client_frame(OP_PING, b""), allowance=3)
    assert exc.value.code == CloseCode.POLICY
    # A partial frame is spent only once it is whole.
    reader = FrameReader(1000)
    hello = client_frame(OP_TEXT, b"hello")
    assert reader.feed(hello[:4], allowance=1) == []
    assert reader.spent == 0
    assert reader.feed(hello[4:], allowance=1) == [(OP_TEXT, b"hello")]
    assert reader.spent == 1


def test_a_frame_budget_allows_its_burst_then_its_rate() -> None:
    budget = FrameBudget(burst=8, rate=0.5)
    full_at = 0.0
    assert budget.allowance(full_at, 100.0) == 8
    full_at = budget.spend(full_at, 100.0, 8)
    assert full_at == 116.0  # 8 frames at one per 2 s
    assert budget.allowance(full_at, 100.0) == 0
    assert budget.allowance(full_at, 101.9) == 0
    assert budget.allowance(full_at, 102.0) == 1
    assert budget.allowance(full_at, 110.0) == 5
    assert budget.allowance(full_at, 200.0) == 8  # never more than the burst
    full_at = budget.spend(full_at, 102.0, 1)
    assert budget.allowance(full_at, 102.0) == 0
    assert budget.spend(full_at, 102.0, 0) == full_at
    assert "over 8 at 0.5 per second" in budget.reason


@pytest.mark.parametrize(("burst", "rate"), [(0, 1.0), (8, 0.0), (8, -1.0)])
def test_a_frame_budget_must_allow_something(burst: int, rate: float) -> None:
    with pytest.raises(ValueError):
        FrameBudget(burst, rate)


def test_a_64_bit_length_is_refused_without_buffering() -> None:
    reader = FrameReader(1000)
    with pytest.raises(FrameError):
        reader.feed(bytes((0x81, 0x80 | 127)) + (2**40).to_bytes(8, "big"))


def test_nothing_after_a_close_frame_is_read() -> None:
    reader = FrameReader(100)
    out = reader.feed(client_frame(OP_CLOSE, b"\x03\xe8bye") + client_frame(OP_TEXT, b"late"))
    assert out == [(OP_CLOSE, b"\x03\xe8bye")]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [(b"", (1005, "")), (b"\x03\xe8", (1000, "")), (b"\x0f\xa0ok", (4000, "ok"))],
)
def test_close_payloads_parse(payload: bytes, expected: tuple[int, str]) -> None:
    assert parse_close(payload) == expected


@pytest.mark.parametrize("payload", [b"\x03", b"\x03\xed", b"\x00\x01", b"\x03\xe8\xff"])
def test_bad_close_payloads_are_refused(payload: bytes) -> None:
    with pytest.raises(FrameError):
        parse_close(payload)


def test_close_reasons_are_cut_to_fit_a_control_frame() -> None:
    frame = close_frame(4408, "é" * 200)
    assert len(frame) <= 2 + 125
    parse_close(frame[2:])
