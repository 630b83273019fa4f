"""Query strings as ``urllib.parse.parse_qsl`` reads them (blank values kept, a
bound on the fields), with a fast path for text that has nothing to unquote.

Every new SSE client and Socket.IO session has its query parsed; a token-only
query has no ``%`` or ``+``, and splitting it directly costs a fraction of
``parse_qsl``'s per-field unquoting. Sans-I/O; no other HTTP parsing here.
"""

from __future__ import annotations

from urllib.parse import parse_qsl


def query_pairs(query: str, max_fields: int) -> list[tuple[str, str]]:
    """``name=value`` pairs in order, decoded; ValueError past ``max_fields`` fields
    (counted as ``parse_qsl`` does: one more than the ``&`` separators)."""
    if "%" in query or "+" in query:
        return parse_qsl(query, keep_blank_values=True, max_num_fields=max_fields)
    if query.count("&") >= max_fields:
        raise ValueError("Max number of fields exceeded")
    pairs: list[tuple[str, str]] = []
    for field in query.split("&"):
        if field:
            name, _, value = field.partition("=")
            pairs.append((name, value))
    return pairs
