"""The telemetry body (tidings.protocol.telemetry): what clients send, what the app accepts."""

from __future__ import annotations

import orjson
import pytest

from tidings.protocol.errors import BadRequest, TooLarge
from tidings.protocol.telemetry import (
    MAX_REPORT_BYTES,
    MAX_SAMPLES,
    MAX_STALENESS_MS,
    StalenessSample,
    TelemetryReport,
    Via,
    decode_report,
    encode_report,
)


def test_a_report_round_trips() -> None:
    report = TelemetryReport(
        samples=(StalenessSample(7, 120, Via.POKE), StalenessSample(9, 0, Via.FULL_PUSH)),
        missed_pokes=1,
        polls=12,
        pokes=3,
        poll_errors=2,
    )
    assert decode_report(encode_report(report)) == report
    assert orjson.loads(encode_report(report))["samples"][0] == {
        "project": 7,
        "staleness_ms": 120,
        "via": "poke",
    }


def test_the_minimal_body_from_the_protocol_is_accepted() -> None:
    sample = {"project": 7, "staleness_ms": 120, "via": "poll"}
    report = decode_report(orjson.dumps({"samples": [sample], "missed_pokes": 0, "polls": 12}))
    assert report.pokes == 0 and report.poll_errors == 0 and report.polls == 12


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    assert decode_report(b'{"samples": [], "missed_pokes": 0, "polls": 0, "later": 1}').polls == 0


def _with_sample(**fields: object) -> bytes:
    sample = {"project": 7, "staleness_ms": 1, "via": "poll", **fields}
    return orjson.dumps({"samples": [sample], "missed_pokes": 0, "polls": 0})


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"not json",
        b'{"samples": [], "polls": 0}',
        b'{"samples": {}, "missed_pokes": 0, "polls": 0}',
        b'{"samples": [], "missed_pokes": -1, "polls": 0}',
        b'{"samples": [], "missed_pokes": 0, "polls": 1.5}',
        b'{"samples": [], "missed_pokes": 0, "polls": true}',
        _with_sample(project=0),
        _with_sample(staleness_ms=-1),
        _with_sample(staleness_ms=MAX_STALENESS_MS + 1),
        _with_sample(via="carrier pigeon"),
        _with_sample(via=None),
    ],
)
def test_malformed_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(BadRequest):
        decode_report(body)


def test_bounds() -> None:
    sample = {"project": 7, "staleness_ms": MAX_STALENESS_MS, "via": "poll"}
    full = {"samples": [sample] * MAX_SAMPLES, "missed_pokes": 0, "polls": 0}
    assert len(decode_report(orjson.dumps(full)).samples) == MAX_SAMPLES
    assert len(orjson.dumps(full)) < MAX_REPORT_BYTES
    with pytest.raises(BadRequest):
        decode_report(orjson.dumps({**full, "samples": [sample] * (MAX_SAMPLES + 1)}))
    with pytest.raises(TooLarge):
        decode_report(b" " * (MAX_REPORT_BYTES + 1))
