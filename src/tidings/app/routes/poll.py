"""Polling several projects in one request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from tidings.app.polling import DEFAULT_LIMIT, MAX_LIMIT, MAX_POLL_PROJECTS
from tidings.app.routes.responses import errors
from tidings.app.schemas import MultiPollOut
from tidings.app.services import Services, services

router = APIRouter(prefix="/api", tags=["projects"])
Svc = Annotated[Services, Depends(services)]


@router.get("/poll", response_model=MultiPollOut, responses=errors(400, 401))
async def poll_many(
    request: Request,
    s: Svc,
    p: Annotated[
        list[Annotated[str, Query(max_length=40)]],
        Query(description="project:since, e.g. p=7:42&p=9:13", max_length=MAX_POLL_PROJECTS),
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Response:
    return await s.poller.respond_many(request, p, limit)
