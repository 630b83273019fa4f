"""Hypothesis strategies for malformed push input, shared by the parser and socket fuzzers.

Each transport gets inputs of two kinds: built from the protocol's own parts with
some of them wrong (bad opcodes, lying lengths, stray separators), and valid
seeds mutated byte by byte (flips, cuts, insertions), which reach the corners a
grammar does not think of. Counts are set by the tests (see ``budget``).
"""

from __future__ import annotations

import os
import struct
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

#: Inputs per parser (parser fuzzers) and malformed frames per transport (socket
#: fuzzers). CI runs a quarter of the parser count (10,000 inputs take 2-7 s per
#: parser on a contended 2-core machine) and a few hundred frames per transport;
#: TIDINGS_FUZZ_INPUTS=10000 TIDINGS_FUZZ_FRAMES=10000 is the full run.
PARSER_INPUTS = int(os.environ.get("TIDINGS_FUZZ_INPUTS", "2500"))
SOCKET_FRAMES = int(os.environ.get("TIDINGS_FUZZ_FRAMES", "300"))

#: Inputs per Hypothesis example: batching makes 10,000 inputs cost ~1 s, not ~5 s.
BATCH = 25


def budget(total: int) -> int:
    """Hypothesis examples needed for ``total`` inputs in batches of ``BATCH``."""
    return max(1, -(-total // BATCH))


def _mutate(seed: bytes, edits: list[tuple[int, int, int, bytes]]) -> bytes:
    data = bytearray(seed)
    for kind, pos, size, extra in edits:
        at = pos % (len(data) + 1)
        if kind == 0 and data:  # flip a byte
            data[at % len(data)] ^= (size % 255) + 1
        elif kind == 1:  # insert bytes
            data[at:at] = extra
        elif kind == 2:  # delete a range
            del data[at : at + size]
        elif kind == 3:  # truncate
            del data[at:]
        elif kind == 4:  # duplicate a range
            data[at:at] = data[at : at + size]
    return bytes(data)


def mutated(seeds: list[bytes], *, max_edits: int = 4) -> st.SearchStrategy[bytes]:
    """A valid input with 1..max_edits byte-level edits."""
    edit = st.tuples(
        st.integers(0, 4), st.integers(0, 1 << 16), st.integers(0, 32), st.binary(max_size=8)
    )
    return st.builds(
        _mutate, st.sampled_from(seeds), st.lists(edit, min_size=1, max_size=max_edits)
    )


def batches(inputs: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(inputs, min_size=BATCH, max_size=BATCH)


# -- WebSocket frames ----------------------------------------------------------------

BAD_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\xc0\xaf"]


def ws_frame(
    op: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    length_form: int = 0,
    length_delta: int = 0,
) -> bytes:
    """One client frame, possibly lying: ``length_form`` 1/2 forces the 16/64-bit
    length even for short payloads, ``length_delta`` declares more or fewer bytes
    than follow."""
    declared = max(0, len(payload) + length_delta)
    b0 = (0x80 if fin else 0) | (rsv & 7) << 4 | (op & 0x0F)
    mbit = 0x80 if mask else 0
    if length_form == 0 and declared < 126:
        head = bytes((b0, mbit | declared))
    elif length_form <= 1 and declared < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, declared)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, min(declared, (1 << 64) - 1))
    if not mask:
        return head + payload
    key = b"\x37\xfa\x21\x3d"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def _close_payload(code: int, reason: bytes) -> bytes:
    return code.to_bytes(2, "big") + reason


close_payloads = st.one_of(
    st.binary(max_size=3),
    st.builds(
        _close_payload,
        st.one_of(
            st.integers(0, 65535), st.sampled_from([999, 1004, 1005, 1006, 1015, 2999, 5000])
        ),
        st.one_of(st.binary(max_size=10), st.sampled_from(BAD_UTF8)),
    ),
)

ws_payloads = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(BAD_UTF8),
    st.builds(lambda a, b: a + b, st.text(max_size=10).map(str.encode), st.sampled_from(BAD_UTF8)),
    st.just(b'{"type":"subscribe","token":"x","projects":{"7":1}}'),
    st.just(b"x" * 200),
)

#: One frame built from parts, any of which may be wrong.
ws_built_frames = st.builds(
    ws_frame,
    op=st.one_of(st.sampled_from([0x0, 0x1, 0x2, 0x8, 0x9, 0xA]), st.integers(0, 15)),
    payload=ws_payloads,
    fin=st.booleans(),
    rsv=st.one_of(st.just(0), st.integers(0, 7)),
    mask=st.booleans(),
    length_form=st.integers(0, 2),
    length_delta=st.one_of(st.just(0), st.integers(-3, 3)),
)

_WS_SEEDS = [
    ws_frame(0x1, b'{"type":"subscribe","token":"t","projects":{"7":1}}'),
    ws_frame(0x9, b"ping"),
    ws_frame(0x8, _close_payload(1000, b"bye")),
    ws_frame(0x1, b"hel", fin=False) + ws_frame(0xA, b"") + ws_frame(0x0, b"lo"),
    ws_frame(0x1, b"x" * 300),
]

#: What a hostile client sends: many tiny frames, control frames between
#: continuations, fragmented messages left open; valid frames, so that the
#: reader's bounds (fragments, budget) decide, not its framing checks.
ws_hostile_frame = st.one_of(
    st.builds(
        ws_frame,
        st.just(0x1),
        st.binary(max_size=3).map(lambda b: b.hex().encode()),
        fin=st.booleans(),
    ),
    st.builds(ws_frame, st.just(0x0), st.just(b""), fin=st.booleans()),
    st.builds(ws_frame, st.just(0x0), st.just(b"ab"), fin=st.booleans()),
    st.builds(ws_frame, st.sampled_from([0x9, 0xA]), st.binary(max_size=8)),
)


def _fragmented(pieces: int, finished: bool) -> list[bytes]:
    """A text message in ``pieces`` frames (left open unless ``finished``)."""
    frames = [ws_frame(0x1, b"{", fin=False)]
    frames += [ws_frame(0x0, b"", fin=False) for _ in range(pieces - 1)]
    if finished:
        frames.append(ws_frame(0x0, b"}"))
    return frames


_hostile_items = st.one_of(
    ws_hostile_frame.map(lambda f: [f]),
    st.builds(_fragmented, st.integers(1, 8), st.booleans()),
)

#: (frames, cut points, frames allowed per read): one connection's bytes in reads.
ws_hostile_sequences = st.tuples(
    st.lists(_hostile_items, max_size=12).map(lambda items: [f for i in items for f in i]),
    st.lists(st.integers(0, 400), max_size=6),
    st.integers(1, 24),
)

#: A sequence of frames as one byte string: built ones, mutated valid ones, and
#: fragmented messages with control frames (or a bad close) between the fragments.
ws_inputs = st.one_of(
    ws_built_frames,
    st.lists(ws_built_frames, min_size=2, max_size=4).map(b"".join),
    mutated(_WS_SEEDS),
    st.builds(
        lambda first, mid, last: first + mid + last,
        st.builds(ws_frame, st.sampled_from([0x1, 0x2]), ws_payloads, fin=st.just(False)),
        st.one_of(
            st.builds(
                ws_frame,
                st.sampled_from([0x8, 0x9, 0xA]),
                st.binary(max_size=130),
                fin=st.booleans(),
            ),
            st.builds(lambda p: ws_frame(0x8, p), close_payloads),
            st.builds(ws_frame, st.sampled_from([0x1, 0x2]), ws_payloads),
        ),
        st.builds(ws_frame, st.just(0x0), ws_payloads, fin=st.booleans()),
    ),
    st.builds(lambda p: ws_frame(0x8, p), close_payloads),
)


# -- HTTP requests and WebSocket handshakes -------------------------------------------

_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
_header_name = st.one_of(
    st.sampled_from(
        [
            "Host",
            "Upgrade",
            "Connection",
            "Sec-WebSocket-Key",
            "Sec-WebSocket-Version",
            "Origin",
            "Content-Length",
            "Transfer-Encoding",
            "Cookie",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12),
    st.binary(min_size=1, max_size=8).map(lambda b: b.decode("latin-1")),
)
_header_value = st.one_of(
    st.sampled_from(
        [
            "websocket",
            "WebSocket",
            "upgrade",
            "Upgrade, keep-alive",
            "13",
            "8",
            "",
            "0",
            "-1",
            "chunked",
            "99999999999999999999",
            _KEY,
            "not base64!",
            "AAAA",
            "=" * 24,
            "http://evil.example",
            "x" * 300,
        ]
    ),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
)
_path = st.one_of(
    st.sampled_from(
        [
            "/ws",
            "/sse",
            "/socket.io/",
            "/healthz",
            "/readyz",
            "/metrics",
            "/",
            "*",
            "/ws?x=%zz",
            "/sse?token=&p=7:1",
            "//ws",
            "/ws#frag",
            "http://x/ws",
            "/%00",
        ]
    ),
    st.text(max_size=20).map(lambda t: "/" + t),
)


def _request(
    method: str, path: str, version: str, headers: list[tuple[str, str]], body: bytes, eol: str
) -> bytes:
    head = f"{method} {path} {version}{eol}" + "".join(f"{n}: {v}{eol}" for n, v in headers)
    return head.encode("utf-8", "surrogateescape") + eol.encode() + body


_ws_headers = st.lists(
    st.sampled_from(
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", _KEY),
            ("Sec-WebSocket-Version", "13"),
            ("Host", "x"),
        ]
    ),
    max_size=5,
    unique=True,
)

http_built = st.builds(
    _request,
    method=st.one_of(
        st.sampled_from(["GET", "POST", "OPTIONS", "PUT", "HEAD", "get", "G ET"]),
        st.text(max_size=8),
    ),
    path=_path,
    version=st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9", "", "HTTP/1.1 x"]),
    headers=st.builds(
        lambda a, b: a + b,
        _ws_headers,
        st.lists(st.tuples(_header_name, _header_value), max_size=4),
    ),
    body=st.one_of(st.just(b""), st.binary(max_size=30)),
    eol=st.sampled_from(["\r\n", "\r\n", "\n", "\r"]),
)

HTTP_SEEDS = [
    _request(
        "GET",
        "/ws",
        "HTTP/1.1",
        [
            ("Host", "x"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", _KEY),
            ("Sec-WebSocket-Version", "13"),
        ],
        b"",
        "\r\n",
    ),
    _request("GET", "/sse?token=abc&p=7:1", "HTTP/1.1", [("Host", "x")], b"", "\r\n"),
    _request(
        "POST",
        "/socket.io/?EIO=4&transport=polling&sid=x",
        "HTTP/1.1",
        [("Host", "x"), ("Content-Length", "2")],
        b"40",
        "\r\n",
    ),
    _request(
        "POST",
        "/x",
        "HTTP/1.1",
        [("Host", "x"), ("Transfer-Encoding", "chunked")],
        b"2\r\nab\r\n0\r\n\r\n",
        "\r\n",
    ),
]

http_inputs = st.one_of(http_built, mutated(HTTP_SEEDS, max_edits=3))


# -- SSE query strings ---------------------------------------------------------------

_query_value = st.one_of(
    st.sampled_from(
        [
            "7:1",
            "7:",
            ":1",
            "0:1",
            "-7:1",
            "7:-1",
            "7:1:2",
            "07:01",
            "\u00b2:1",
            "7:\u0663",
            "1" * 19 + ":1",
            "7:" + "9" * 30,
            "1" * 5000 + ":1",
            "%37:1",
            "7%3A1",
            "",
            "zz",
        ]
    ),
    st.text(max_size=12),
)
_query_name = st.sampled_from(["token", "p", "P", "token[]", "", "t", "p "])
sse_queries = st.one_of(
    st.lists(st.tuples(_query_name, _query_value), max_size=6).map(
        lambda pairs: "&".join(f"{n}={v}" for n, v in pairs)
    ),
    mutated([b"token=abc.def.ghi&p=7:1&p=9:13"]).map(lambda b: b.decode("latin-1")),
    st.text(max_size=40),
)


# -- Engine.IO packets and long-polling bodies; Socket.IO packets ---------------------

_SIO_SEEDS = [
    '40{"token":"t","projects":{"7":1}}',
    "40",
    '40/admin,{"token":"t"}',
    '42["subscribe",{"token":"t"}]',
    '421["refresh",{"token":"t","projects":{}}]',
    "3",
    "41",
    "431[]",
    '451-["x",{"_placeholder":true,"num":0}]',
    '44{"message":"x"}',
    '42/nsp,7["a"]',
]
sio_packets = st.one_of(
    mutated([s.encode() for s in _SIO_SEEDS]).map(lambda b: b.decode("utf-8", "replace")),
    st.builds(
        lambda t, nsp, ack, data: t + nsp + ack + data,
        st.sampled_from([*"0123456789", "a", ""]),
        st.sampled_from(["", "/", "/x,", "/" * 200 + ",", "/,", "/\u202e,", "/\x00,"]),
        st.sampled_from(["", "1", "0", "9999999999", "01", "-1"]),
        st.one_of(
            st.sampled_from(
                [
                    '["subscribe"]',
                    '["subscribe",1]',
                    '["connect",{}]',
                    "[true]",
                    "[]",
                    "null",
                    '{"token":1}',
                    '{"projects":{"\u00b2":1},"token":"t"}',
                    ' ["x"]',
                    '["x"] ',
                    '["subscribe",{"token":"t","projects":{"7":-1}}]',
                    '"str"',
                    "{",
                    "1e999",
                ]
            ),
            st.text(max_size=20),
        ),
    ),
)

_EIO_SEEDS = ["4" + s for s in _SIO_SEEDS] + ["2probe", "3", "5", "6", "1", "bAAAA", "b!!", "2"]
eio_packets = st.one_of(
    sio_packets.map(lambda s: "4" + s),
    mutated([s.encode() for s in _EIO_SEEDS]).map(lambda b: b.decode("utf-8", "replace")),
    st.text(max_size=20),
)
#: Long-polling bodies: packets joined by \x1e (or by something else), raw bytes.
eio_bodies = st.one_of(
    st.lists(eio_packets, min_size=1, max_size=4).map(lambda ps: "\x1e".join(ps).encode()),
    st.lists(eio_packets, min_size=2, max_size=3).map(lambda ps: "\x1e\x1e".join(ps).encode()),
    mutated([b'40\x1e42["subscribe",{}]', b"3\x1e6", b"\x1e", b"b/w==\x1e4"]),
    st.binary(max_size=40),
    st.sampled_from([b"", b"\xff\xfe", b"4" + b"x" * 40_000]),
)
eio_queries = st.one_of(
    st.sampled_from(
        [
            "EIO=4&transport=polling",
            "EIO=3&transport=polling",
            "EIO=4",
            "transport=polling",
            "EIO=4&transport=websocket",
            "EIO=4&transport=polling&j=1",
            "EIO=4&transport=flash",
            "EIO=4&transport=polling&sid=nope",
            "EIO=4&transport=polling&" + "a=1&" * 20,
            "EIO=4&transport=polling&t=" + "x" * 2000,
        ]
    ),
    mutated([b"EIO=4&transport=polling&t=N8hyd6w"]).map(lambda b: b.decode("latin-1")),
    st.text(max_size=30),
)

# -- Client messages (the JSON on /ws and inside Socket.IO events) --------------------

_MESSAGE_SEEDS = [
    b'{"type":"subscribe","token":"abc","projects":{"7":42,"9":0}}',
    b'{"type":"refresh","token":"abc","projects":{}}',
]
client_messages = st.one_of(
    mutated(_MESSAGE_SEEDS),
    st.builds(
        lambda kind, token, key, version: (
            f'{{"type":{kind},"token":{token},"projects":{{{key}:{version}}}}}'.encode()
        ),
        st.sampled_from(['"subscribe"', '"refresh"', '"poke"', "1", "null", '"SUBSCRIBE"']),
        st.sampled_from(['"t"', '""', "1", "null", "[]", '"' + "t" * 9000 + '"']),
        st.sampled_from(
            [
                '"7"',
                '"0"',
                '"-7"',
                '"07"',
                '"\u00b2"',
                '"\u0663"',
                '"7.0"',
                '""',
                '"' + "1" * 19 + '"',
                '"' + "1" * 5000 + '"',
                '"\\u0037"',
            ]
        ),
        st.sampled_from(["1", "0", "-1", "1.5", "1e3", "true", "null", '"1"', "9" * 20, "9" * 30]),
    ),
    st.binary(max_size=30),
)

# -- Tokens -----------------------------------------------------------------------

tokens = st.one_of(
    st.text(max_size=60),
    mutated([b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0.eyJzdWIiOiIxIn0.c2ln"]).map(
        lambda b: b.decode("latin-1")
    ),
    st.builds(
        lambda a, b, c: f"{a}.{b}.{c}",
        st.text(max_size=8),
        st.text(max_size=8),
        st.text(max_size=8),
    ),
)


def collect(strategy: st.SearchStrategy[Any], total: int) -> list[Any]:
    """``total`` inputs drawn by Hypothesis up front (the socket fuzzers send them
    from async code, where ``@given`` cannot run)."""
    found: list[Any] = []

    @settings(
        max_examples=budget(total),
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(batches(strategy))
    def gather(batch: list[Any]) -> None:
        found.extend(batch)

    gather()
    assert len(found) >= total, f"Hypothesis drew {len(found)} of {total} inputs"
    return found[:total]
