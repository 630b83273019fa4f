"""Clients' freshness reports: how an operator knows push works.

Staleness (commit -> applied) by how the change arrived, and missed pokes (a
poll that found news no poke announced while push looked healthy), exported as
Prometheus metrics. The body is validated by protocol/telemetry.py alone; the
schema below only documents it.
"""

from __future__ import annotations

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
    responses=errors(400, 401, 403, 413),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": REPORT_SCHEMA}},
        }
    },
)
async def telemetry(request: Request, s: Svc) -> Response:
    await s.auth.require(request)
    report = decode_report(await request.body())
    m = s.metrics
    for sample in report.samples:
        m.staleness.labels(str(sample.via)).observe(sample.staleness_ms / 1000)
    if report.missed_pokes:
        m.missed_pokes.inc(report.missed_pokes)
    if report.polls:
        m.client_polls.inc(report.polls)
    return Response(status_code=204)
