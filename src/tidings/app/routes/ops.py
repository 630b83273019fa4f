"""Liveness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import text
from starlette.responses import Response

from tidings.app.routes.responses import JSON
from tidings.app.services import Services, services

router = APIRouter(tags=["operations"])
Svc = Annotated[Services, Depends(services)]


@router.get("/healthz")
async def healthz(s: Svc) -> Response:
    """200 while the database answers; 503 otherwise."""
    try:
        async with s.engines.reader.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return JSON({"status": "unhealthy", "detail": repr(exc)}, status_code=503)
    return JSON({"status": "ok"})


@router.get("/metrics", include_in_schema=False)
async def metrics(s: Svc) -> Response:
    return Response(s.metrics.render(), media_type="text/plain; version=0.0.4")
