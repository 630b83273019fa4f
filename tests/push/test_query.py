"""Query strings: the fast path gives what ``parse_qsl`` gives, bound included."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.push.query import query_pairs


def _reference(query: str, max_fields: int) -> list[tuple[str, str]] | None:
    try:
        return parse_qsl(query, keep_blank_values=True, max_num_fields=max_fields)
    except ValueError:
        return None


@given(st.text(alphabet="abcpt=&;:4-_.~ %2B+é", max_size=80), st.integers(1, 20))
def test_pairs_and_the_field_bound_match_parse_qsl(query: str, max_fields: int) -> None:
    expected = _reference(query, max_fields)
    if expected is None:
        with pytest.raises(ValueError):
            query_pairs(query, max_fields)
    else:
        assert query_pairs(query, max_fields) == expected


@pytest.mark.parametrize(
    ("query", "pairs"),
    [
        ("token=a.b.c&p=7:42&p=9:0", [("token", "a.b.c"), ("p", "7:42"), ("p", "9:0")]),
        ("a&&b=", [("a", ""), ("b", "")]),
        ("t=a%3Ab+c", [("t", "a:b c")]),
        ("", []),
    ],
)
def test_blank_values_are_kept_and_escapes_decoded(
    query: str, pairs: list[tuple[str, str]]
) -> None:
    assert query_pairs(query, 16) == pairs
