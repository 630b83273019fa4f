"""RFC 6455 framing, server side, sans-I/O: encode server frames, parse client frames.

Server frames are unmasked and never fragmented. Client frames go through a small
bounded reader: masking required, RSV bits refused (no extension is ever
negotiated), control frames unfragmented and <= 125 bytes, a message (after
reassembly) at most ``max_size`` bytes in at most ``max_fragments`` frames,
checked from the frame header before any payload is buffered, and no more frames
per call than the caller allows (:class:`FrameBudget`, a token bucket with time
passed in). It does not do the HTTP handshake (see websocket.py).
"""

from __future__ import annotations

import binascii
import hashlib
import math
import struct
import sys
from functools import lru_cache

from tidings.protocol.errors import CloseCode

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

#: Close code meaning "no status code was present" (RFC 6455 7.4.1); never sent.
NO_STATUS = 1005

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_CONTROL_PAYLOAD = 125


class FrameError(Exception):
    """The client broke the framing rules; close with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


#: An empty SHA-1 state, copied per handshake: a copy skips the digest lookup
#: that ``hashlib.sha1()`` makes in OpenSSL 3 on every call.
_SHA1 = hashlib.sha1()


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 4.2.2)."""
    sha1 = _SHA1.copy()
    sha1.update(key.encode() + _GUID)
    # base64.b64encode without its Python frame (every handshake's path).
    return binascii.b2a_base64(sha1.digest(), newline=False).decode()


def valid_key(key: str) -> bool:
    """Base64 of 16 bytes, strictly (``base64.b64decode(key, validate=True)``
    written out: one call instead of three on every handshake's path)."""
    try:
        return len(binascii.a2b_base64(key.encode("ascii"), strict_mode=True)) == 16
    except ValueError:  # binascii.Error and UnicodeEncodeError are ValueErrors
        return False


def encode_frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, n) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, n) + payload


def text_frame(payload: bytes) -> bytes:
    """One FIN text frame around an already-encoded UTF-8 payload."""
    n = len(payload)
    if n < 126:  # encode_frame's first case inline: every small message's path
        return bytes((0x80 | OP_TEXT, n)) + payload
    return encode_frame(OP_TEXT, payload)


def close_frame(code: int, reason: str) -> bytes:
    """A close frame; the reason is cut to fit the 125-byte control-frame limit."""
    raw = reason.encode()[:123].decode(errors="ignore").encode()
    return encode_frame(OP_CLOSE, code.to_bytes(2, "big") + raw)


def unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def parse_close(payload: bytes) -> tuple[int, str]:
    """(code, reason) of a client close frame (RFC 6455 5.5.1, 7.4)."""
    if not payload:
        return NO_STATUS, ""
    if len(payload) == 1:
        raise FrameError(CloseCode.PROTOCOL_ERROR, "close frame payload of one byte")
    code = int.from_bytes(payload[:2], "big")
    if not (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
        raise FrameError(CloseCode.PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise FrameError(CloseCode.INVALID_PAYLOAD, "close reason is not UTF-8") from None
    return code, reason


class OverBudget(FrameError):
    """More frames than the caller allowed (its :class:`FrameBudget`): close 1008."""

    def __init__(self) -> None:
        super().__init__(CloseCode.POLICY, "too many frames")


class FrameBudget:
    """Frames a client may send: a token bucket of ``burst`` frames refilled at
    ``rate`` per second.

    Kept as GCRA: a connection's whole state is one float, ``full_at``, the time
    its bucket is full again (0.0 for a new connection), so an idle connection
    pays nothing for it. Time is passed in.
    """

    __slots__ = ("burst", "interval", "rate", "reason")

    def __init__(self, burst: int, rate: float) -> None:
        if burst < 1 or not rate > 0:
            raise ValueError("a frame budget needs burst >= 1 and rate > 0")
        self.burst = burst
        self.rate = rate
        self.interval = 1.0 / rate
        #: The close reason a client gets past it (1008).
        self.reason = f"too many frames: over {burst} at {rate:g} per second"

    def allowance(self, full_at: float, now: float) -> int:
        """Whole frames the bucket holds at ``now``."""
        if full_at <= now:
            return self.burst
        return max(0, self.burst - math.ceil((full_at - now) * self.rate - 1e-9))

    def spend(self, full_at: float, now: float, frames: int) -> float:
        """``full_at`` after ``frames`` frames taken at ``now`` (at most ``allowance``)."""
        if not frames:
            return full_at
        return max(full_at, now) + frames * self.interval


@lru_cache(maxsize=16)
def frame_budget(burst: int, rate: float) -> FrameBudget:
    """One shared budget object per setting (connections keep only ``full_at``)."""
    return FrameBudget(burst, rate)


class FrameReader:
    """Client frames in, complete messages out: ``(opcode, payload)`` for text (UTF-8
    checked), binary, ping, pong and close, in order.

    Bounded: at most one partial frame (<= ``max_size`` + 14 bytes) is buffered
    between calls, a fragmented message at most ``max_size`` bytes in at most
    ``max_fragments`` frames, and at most ``allowance`` frames are parsed per
    :meth:`feed` (past it :class:`OverBudget`, before the next whole frame is unmasked), so
    a read full of tiny frames costs a bounded amount of work.
    """

    __slots__ = (
        "_buf",
        "_part_count",
        "_part_op",
        "_part_size",
        "_parts",
        "max_fragments",
        "max_size",
        "spent",
    )

    def __init__(self, max_size: int, max_fragments: int = 16) -> None:
        self.max_size = max_size
        self.max_fragments = max_fragments
        self._buf = b""
        self._parts: list[bytes] | None = None
        self._part_op = 0
        self._part_size = 0
        self._part_count = 0
        #: Frames taken by the last :meth:`feed` (whole frames, control ones included).
        self.spent = 0

    @property
    def idle(self) -> bool:
        """No partial frame or message held: the reader can be dropped to save memory."""
        return not self._buf and self._parts is None

    def feed(self, data: bytes, allowance: int = sys.maxsize) -> list[tuple[int, bytes]]:
        """Messages completed by ``data``; raises :class:`FrameError` (close with its
        code) on a broken rule, :class:`OverBudget` past ``allowance`` frames."""
        buf = self._buf + data if self._buf else data
        out: list[tuple[int, bytes]] = []
        pos, n = 0, len(buf)
        spent = 0
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            fin, op = b0 & 0x80, b0 & 0x0F
            if b0 & 0x70:
                raise FrameError(CloseCode.PROTOCOL_ERROR, "reserved bits set")
            if not b1 & 0x80:
                raise FrameError(CloseCode.PROTOCOL_ERROR, "client frames must be masked")
            length, head = b1 & 0x7F, 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            self._check(op, fin, length)
            end = pos + head + 4 + length
            if n < end:
                break
            if spent >= allowance:  # a whole frame past the budget: not unmasked
                raise OverBudget
            payload = unmask(buf[pos + head + 4 : end], buf[pos + head : pos + head + 4])
            pos = end
            spent += 1
            if op >= OP_CLOSE:
                out.append((op, payload))
                if op == OP_CLOSE:
                    pos = n  # nothing after a close frame counts
                    break
            elif op == OP_CONT:
                assert self._parts is not None
                self._parts.append(payload)
                self._part_size += length
                self._part_count += 1
                if fin:
                    out.append(self._message(self._part_op, b"".join(self._parts)))
                    self._parts = None
                    self._part_size = 0
            elif fin:
                out.append(self._message(op, payload))
            else:
                self._parts, self._part_op, self._part_size = [payload], op, length
                self._part_count = 1
        self._buf = buf[pos:] if pos < n else b""
        self.spent = spent
        return out

    def _check(self, op: int, fin: int, length: int) -> None:
        if op >= OP_CLOSE:
            if op not in (OP_CLOSE, OP_PING, OP_PONG):
                raise FrameError(CloseCode.PROTOCOL_ERROR, f"unknown opcode {op}")
            if not fin or length > _MAX_CONTROL_PAYLOAD:
                raise FrameError(CloseCode.PROTOCOL_ERROR, "control frames are short and whole")
        elif op == OP_CONT:
            if self._parts is None:
                raise FrameError(CloseCode.PROTOCOL_ERROR, "continuation outside a message")
            if self._part_size + length > self.max_size:
                raise FrameError(CloseCode.TOO_BIG, f"message over {self.max_size} bytes")
            if self._part_count >= self.max_fragments:
                raise FrameError(
                    CloseCode.TOO_BIG, f"message in over {self.max_fragments} fragments"
                )
        elif op in (OP_TEXT, OP_BINARY):
            if self._parts is not None:
                raise FrameError(CloseCode.PROTOCOL_ERROR, "new message inside a fragmented one")
            if length > self.max_size:
                raise FrameError(CloseCode.TOO_BIG, f"message over {self.max_size} bytes")
        else:
            raise FrameError(CloseCode.PROTOCOL_ERROR, f"unknown opcode {op}")

    @staticmethod
    def _message(op: int, payload: bytes) -> tuple[int, bytes]:
        if op == OP_TEXT:
            try:
                payload.decode()
            except UnicodeDecodeError:
                raise FrameError(CloseCode.INVALID_PAYLOAD, "text frame is not UTF-8") from None
        return op, payload
