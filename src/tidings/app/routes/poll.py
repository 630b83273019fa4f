"""Polling several projects in one request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from tidings.app.polling import parse_targets
from tidings.app.routes.responses import JSON, errors
from tidings.app.schemas import MultiPollOut
from tidings.app.services import Services, services
from tidings.protocol.advice import ADVICE_HEADER, Advice

router = APIRouter(prefix="/api", tags=["projects"])
Svc = Annotated[Services, Depends(services)]


@router.get("/poll", response_model=MultiPollOut, responses=errors(400, 401))
async def poll_many(
    request: Request,
    s: Svc,
    p: Annotated[
        list[Annotated[str, Query(max_length=40)]],
        Query(description="project:since, e.g. p=7:42&p=9:13", max_length=50),
    ],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    principal = await s.auth.require(request)
    body = await s.poller.poll_many(principal.user, parse_targets(p), limit)
    advice = Advice.from_json(body["advice"])
    return JSON(body, headers={ADVICE_HEADER: advice.header()})
