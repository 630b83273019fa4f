"""Clients' freshness reports: how an operator knows push works.

Staleness (commit -> applied) by how the change arrived, and missed pokes (a
poll that found news no poke announced while push looked healthy), exported as
Prometheus metrics. The body is validated by protocol/telemetry.py alone; the
schema below only documents it.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from tidings.app.routes.responses import errors
from tidings.app.services import Services, services
from tidings.protocol.telemetry import MAX_SAMPLES, MAX_STALENESS_MS, decode_report

router = APIRouter(prefix="/api", tags=["telemetry"])
Svc = Annotated[Services, Depends(services)]

_COUNT = {"type": "integer", "minimum": 0, "maximum": 1_000_000}
REPORT_SCHEMA = {
    "type": "object",
    "properties": {
        "samples": {
            "type": "array",
            "maxItems": MAX_SAMPLES,
            "items": {
                "type": "object",
                "required": ["project", "staleness_ms", "via"],
                "properties": {
                    "project": {"type": "integer", "minimum": 1},
                    "staleness_ms": {"type": "integer", "minimum": 0, "maximum": MAX_STALENESS_MS},
                    "via": {"type": "string", "enum": ["poke", "poll", "full_push"]},
                },
            },
        },
        "missed_pokes": _COUNT,
        "polls": _COUNT,
        "pokes": _COUNT,
        "poll_errors": _COUNT,
    },
    "required": ["missed_pokes", "polls"],
}


@router.post(
    "/telemetry",
    status_code=204,
    responses=errors(400, 401, 403, 413, 415, 429),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": REPORT_SCHEMA}},
        }
    },
)
async def telemetry(request: Request, s: Svc) -> Response:
    """Record a report; 429 past the user's report rate, missed pokes counted within
    the user's budget (app/ratelimit.py, TelemetryLimits)."""
    user = (await s.auth.require(request)).user.id
    limiter = s.telemetry_limiter
    if limiter is not None:
        limiter.admit(user, time.monotonic())
    report = decode_report(await request.body())
    missed = report.missed_pokes
    if limiter is not None:
        missed = limiter.missed_to_count(user, missed, time.monotonic())
    m = s.metrics
    now = time.monotonic()
    for sample in report.samples:
        m.staleness.labels(str(sample.via)).observe(sample.staleness_ms / 1000)
        m.recent_staleness.observe(str(sample.via), sample.staleness_ms / 1000, now)
    if missed:
        m.missed_pokes.inc(missed)
    if report.missed_pokes > missed:
        m.missed_pokes_ignored.inc(report.missed_pokes - missed)
    if report.polls:
        m.client_polls.inc(report.polls)
    return Response(status_code=204)
