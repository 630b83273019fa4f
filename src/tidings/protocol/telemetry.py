"""Freshness telemetry a client sends to ``POST /api/telemetry``: the body, defined once.

``{"samples": [{"project": 7, "staleness_ms": 120, "via": "poke"}], "missed_pokes": 0,
"polls": 12, "pokes": 3, "poll_errors": 0}`` (docs/PROTOCOL.md section 5). Decoding
is strict about the fields it knows and ignores the others, so clients may add
fields before the app reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from tidings.protocol.errors import BadRequest, TooLarge

TELEMETRY_PATH = "/api/telemetry"

#: Samples in one report; a client holding this many sends at once. At about
#: 60 bytes a sample a full report is ~30 KiB, under MAX_REPORT_BYTES.
MAX_SAMPLES = 500

#: Larger bodies are refused with 413 before parsing.
MAX_REPORT_BYTES = 64 * 1024

#: One day: clients clamp larger staleness (a laptop asleep for a week) to this.
MAX_STALENESS_MS = 86_400_000

#: Bound on each counter in one report; larger values are refused (400).
MAX_COUNT = 1_000_000


class Via(StrEnum):
    """How the event reached the client."""

    POKE = "poke"  # a poll that a poke (or the subscribe answer) announced
    POLL = "poll"  # a poll on the regular cadence, no announcement
    FULL_PUSH = "full_push"  # the events rode on the poke itself


@dataclass(frozen=True, slots=True)
class StalenessSample:
    project: int
    #: Commit time (the event's ``ts``) to applied on the client, in milliseconds.
    staleness_ms: int
    via: Via

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "staleness_ms": self.staleness_ms, "via": str(self.via)}


@dataclass(frozen=True, slots=True)
class TelemetryReport:
    samples: tuple[StalenessSample, ...] = ()
    #: Polls that found a version no poke announced while push was healthy.
    missed_pokes: int = 0
    #: Projects polled (a multi-project poll of three counts three).
    polls: int = 0
    #: Pokes received for projects using push, duplicates included.
    pokes: int = 0
    #: Polls (and snapshot loads) that failed.
    poll_errors: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": [s.to_json() for s in self.samples],
            "missed_pokes": self.missed_pokes,
            "polls": self.polls,
            "pokes": self.pokes,
            "poll_errors": self.poll_errors,
        }

    def is_empty(self) -> bool:
        return not (
            self.samples or self.missed_pokes or self.polls or self.pokes or self.poll_errors
        )


def encode_report(report: TelemetryReport) -> bytes:
    return orjson.dumps(report.to_json())


def _count(body: dict[str, Any], field: str, required: bool) -> int:
    if field not in body and not required:
        return 0
    value = body.get(field)
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        raise BadRequest(f"{field!r} must be an integer in 0..{MAX_COUNT}", field=field)
    return value


def _sample(raw: Any) -> StalenessSample:
    if not isinstance(raw, dict):
        raise BadRequest("each sample must be an object", field="samples")
    project, staleness, via = raw.get("project"), raw.get("staleness_ms"), raw.get("via")
    if type(project) is not int or project <= 0:
        raise BadRequest("'project' must be a positive integer", field="samples")
    if type(staleness) is not int or not 0 <= staleness <= MAX_STALENESS_MS:
        raise BadRequest(
            f"'staleness_ms' must be an integer in 0..{MAX_STALENESS_MS}", field="samples"
        )
    try:
        return StalenessSample(project, staleness, Via(str(via)))
    except ValueError:
        raise BadRequest("'via' must be 'poke', 'poll' or 'full_push'", field="samples") from None


def decode_report(data: bytes | str) -> TelemetryReport:
    """Parse and validate a report body; BadRequest (400) or TooLarge (413) otherwise."""
    if len(data) > MAX_REPORT_BYTES:
        raise TooLarge("telemetry report too large")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise BadRequest("body is not JSON") from None
    return report_from_json(body)


def report_from_json(body: Any) -> TelemetryReport:
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    samples = body.get("samples", [])
    if not isinstance(samples, list) or len(samples) > MAX_SAMPLES:
        raise BadRequest(f"'samples' must be a list of at most {MAX_SAMPLES}", field="samples")
    return TelemetryReport(
        samples=tuple(_sample(s) for s in samples),
        missed_pokes=_count(body, "missed_pokes", required=True),
        polls=_count(body, "polls", required=True),
        pokes=_count(body, "pokes", required=False),
        poll_errors=_count(body, "poll_errors", required=False),
    )
