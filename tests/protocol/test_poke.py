"""The poke as receivers decode it: what is refused (with BadMessage), what passes,
and version keys read back from the broker (never raising)."""

from __future__ import annotations

import orjson
import pytest

from tidings.protocol.errors import BadMessage
from tidings.protocol.poke import (
    MAX_VERSION,
    Poke,
    decode_poke,
    encode_poke,
    parse_version_key,
    valid_version,
)


def poke_bytes(**fields: object) -> bytes:
    body: dict[str, object] = {"type": "poke", "project": 7, "version": 43, "ts": 1732780200.5}
    body.update(fields)
    return orjson.dumps(body)


def test_a_poke_round_trips_and_the_largest_version_is_accepted() -> None:
    assert decode_poke(encode_poke(Poke(7, 43, 1.5))) == Poke(7, 43, 1.5)
    assert decode_poke(poke_bytes(version=MAX_VERSION)).version == 2**53
    assert decode_poke(poke_bytes(version=0, ts=0)).version == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"version": 2**64 - 1},
        {"version": 2**53 + 1},
        {"version": -1},
        {"version": 43.0},
        {"version": "43"},
        {"version": True},
        {"project": 2**63},
        {"project": -7},
        {"ts": 1e300},
        {"ts": -1},
        {"ts": "now"},
    ],
    ids=repr,
)
def test_a_poke_with_a_field_out_of_range_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(BadMessage):
        decode_poke(poke_bytes(**fields))


@pytest.mark.parametrize("field", ["type", "project", "version", "ts"])
def test_a_poke_without_a_required_field_is_refused(field: str) -> None:
    body = orjson.loads(poke_bytes())
    del body[field]
    with pytest.raises(BadMessage):
        decode_poke(orjson.dumps(body))


def test_a_version_beyond_64_bits_is_refused_not_raised_as_something_else() -> None:
    data = b'{"type":"poke","project":7,"version":' + b"9" * 30 + b',"ts":1}'
    with pytest.raises(BadMessage):
        decode_poke(data)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"0", 0),
        (b"43", 43),
        (str(2**53).encode(), 2**53),
        ("17", 17),
        (str(2**53 + 1).encode(), None),
        (str(2**64 + 1).encode(), None),
        (b"9" * 5000, None),
        (b"", None),
        (b"-1", None),
        (b"+1", None),
        (b" 1", None),
        (b"1.5", None),
        (b"1e3", None),
        ("\u00b2".encode(), None),
        (b"\xff\xfe", None),
        (b"abc", None),
    ],
)
def test_a_version_key_is_read_only_as_an_ascii_decimal_in_range(
    raw: bytes | str, expected: int | None
) -> None:
    assert parse_version_key(raw) == expected


def test_valid_version_is_the_one_bound() -> None:
    assert valid_version(0) and valid_version(MAX_VERSION)
    assert not valid_version(MAX_VERSION + 1)
    assert not valid_version(-1)
    assert not valid_version(True)
    assert not valid_version(1.0)
