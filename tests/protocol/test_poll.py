"""The poll answer's wire format: the version tag test, the headers, the empty answer."""

from __future__ import annotations

from tidings.protocol.advice import ADVICE_HEADER, VERSION_HEADER, Advice
from tidings.protocol.poll import answer_body, holds_version, version_headers


def test_if_none_match_holds_the_version_in_any_listed_or_weak_tag() -> None:
    assert holds_version('"7"', 7)
    assert holds_version('W/"7"', 7)
    assert holds_version('"3", W/"7"', 7)
    assert not holds_version('"7"', 8)
    assert not holds_version("7", 7)  # a tag is quoted
    assert not holds_version(None, 7) and not holds_version("", 7)


def test_headers_and_an_empty_answer_carry_the_version_and_the_advice() -> None:
    advice = Advice(push=True, interval=60.0, fallback_interval=5.0, jitter=0.2)
    assert version_headers(4) == {"ETag": '"4"', VERSION_HEADER: "4"}
    assert version_headers(4, advice)[ADVICE_HEADER] == advice.header()
    body = answer_body(9, 4, 2, advice)
    assert (body["project"], body["version"], body["since"], body["events"]) == (9, 4, 2, [])
    assert Advice.from_json(body["advice"]) == advice
