"""The snapshot's gzip stream from kept runs: the bytes of a single stream after
any change, reusing the runs a change does not touch (pure: no database)."""

from __future__ import annotations

import gzip
import random
import shutil
import subprocess
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.store import gzblocks
from tidings.store.gzblocks import Blocks

HEAD = b'{"id":1,"name":"P","version":3,"members":[],"stories":['
TAIL = b"]}"


def body(sid: int, n: int) -> bytes:
    return b'{"id":%d,"title":"%s"}' % (sid, (b"story %d " % sid) * (n % 7))


def plain(order: list[int], bodies: dict[int, bytes]) -> bytes:
    return HEAD + b",".join(bodies[sid] for sid in order) + TAIL


edit = st.tuples(
    st.sampled_from(["update", "insert", "delete", "move"]),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
)


@settings(max_examples=150, deadline=None)
@given(
    stories=st.integers(0, 60),
    mean=st.integers(1, 8),
    level=st.sampled_from([1, 4, 9]),
    edits=st.lists(edit, max_size=12),
)
def test_after_every_change_the_stream_inflates_to_the_snapshot(
    stories: int, mean: int, level: int, edits: list[tuple[str, int, int]]
) -> None:
    order = list(range(1, stories + 1))
    bodies = {sid: body(sid, sid) for sid in order}
    blocks = Blocks(mean)
    next_id = stories + 1
    for kind, a, b in [("none", 0, 0), *edits]:
        changed: list[int] = []
        if kind == "insert":
            order.insert(a % (len(order) + 1), next_id)
            bodies[next_id] = body(next_id, b)
            next_id += 1
        elif order and kind == "update":
            sid = order[a % len(order)]
            changed.append(sid)
            bodies[sid] = body(sid, b + 1)
        elif order and kind == "delete":
            sid = order.pop(a % len(order))
            changed.append(sid)
            del bodies[sid]
        elif order and kind == "move":
            sid = order.pop(a % len(order))
            order.insert(b % (len(order) + 1), sid)
        order = list(order)  # a new order, as after any change of ranks
        blocks.forget(changed)
        packed = blocks.gzip(HEAD, order, bodies, TAIL, level)
        assert gzip.decompress(packed) == plain(order, bodies)
        assert packed[:10] == gzip.compress(b"", level, mtime=0)[:10]


def test_a_change_recompresses_only_the_runs_it_touches() -> None:
    rng = random.Random(5)
    order = list(range(1, 2001))
    rng.shuffle(order)
    bodies = {sid: body(sid, rng.randint(0, 50)) for sid in order}
    blocks = Blocks(16)
    blocks.gzip(HEAD, order, bodies, TAIL, 4)
    runs = dict(blocks._runs)
    assert len(runs) > 60
    # An update: one run made anew, every other kept as it was.
    sid = order[700]
    blocks.forget([sid])
    bodies[sid] = body(sid, 3) + b" "
    packed = blocks.gzip(HEAD, order, bodies, TAIL, 4)
    assert gzip.decompress(packed) == plain(order, bodies)
    assert sum(run is not runs.get(key) for key, run in blocks._runs.items()) == 1
    # A move: the run it leaves and the run it enters, whatever lies between (of
    # a story that does not end its run: one that does joins two where it leaves).
    runs = dict(blocks._runs)
    at = next(i for i in range(100, 200) if (order[i] * 0x9E3779B1) % 2**32 >= 2**32 // 16)
    order = order[:at] + order[at + 1 : 1500] + [order[at]] + order[1500:]
    blocks.gzip(HEAD, order, bodies, TAIL, 4)
    assert sum(run is not runs.get(key) for key, run in blocks._runs.items()) == 2


def test_an_unchanged_body_of_new_bytes_still_gives_the_same_stream() -> None:
    order = list(range(1, 300))
    bodies = {sid: body(sid, sid) for sid in order}
    blocks = Blocks(8)
    first = blocks.gzip(HEAD, order, bodies, TAIL, 4)
    bodies[17] = bytes(bytearray(bodies[17]))  # equal, not the same object
    assert blocks.gzip(HEAD, order, bodies, TAIL, 4) == first


@given(a=st.binary(max_size=300), b=st.binary(max_size=3000))
def test_the_crc_combines_as_zlib_computes_it_whole(a: bytes, b: bytes) -> None:
    assert gzblocks.crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


@pytest.mark.parametrize(
    "command",
    [
        ["gzip", "-dc"],
        [
            "node",
            "-e",
            "process.stdout.write(require('zlib').gunzipSync(require('fs').readFileSync(0)))",
        ],
    ],
    ids=["gzip", "node"],
)
def test_other_decoders_take_the_stream(command: list[str]) -> None:
    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed")
    rng = random.Random(9)
    order = list(range(1, 3001))
    bodies = {sid: body(sid, rng.randint(0, 50)) for sid in order}
    blocks = Blocks()
    blocks.gzip(HEAD, order, bodies, TAIL, 4)
    blocks.forget([1500])
    bodies[1500] = body(1500, 99)
    packed = blocks.gzip(HEAD, order, bodies, TAIL, 4)
    assert len(blocks._runs) > 10
    out = subprocess.run(command, input=packed, capture_output=True, check=True, timeout=60)
    assert out.stdout == plain(order, bodies)
